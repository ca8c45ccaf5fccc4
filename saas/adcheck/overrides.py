"""Changing an organization's overrides: from the portal form and from a tenant manifest, audited."""

from __future__ import annotations

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.adcheck.models import AdRuleOverride
from saas.adcheck.rules import Severity, shipped_rules
from saas.audit.services import record
from saas.extensions import db


class InvalidOverride(ValueError):
    """The override cannot be saved; the message says why (Japanese)."""


def _phrases(text: str) -> list[str]:
    return list(dict.fromkeys(p.strip() for p in (text or "").replace("、", "\n").splitlines() if p.strip()))


def _row(organization_id: int, rule_id: str) -> AdRuleOverride | None:
    return db.session.scalars(
        sa.select(AdRuleOverride).where(
            AdRuleOverride.organization_id == organization_id, AdRuleOverride.rule_id == rule_id
        )
    ).first()


def state_of(row: AdRuleOverride | None) -> dict:
    """An override as plain values (the shipped rule when there is no row)."""
    if row is None:
        return {"enabled": True, "severity": None, "extra_phrases": [], "allowed_phrases": []}
    return {
        "enabled": row.enabled,
        "severity": row.severity,
        "extra_phrases": list(row.extra_phrases or []),
        "allowed_phrases": list(row.allowed_phrases or []),
    }


def put(organization_id: int, rule_id: str, wanted: dict) -> bool:
    """Make the organization's override of ``rule_id`` equal ``wanted``; True when something changed.

    An override equal to the shipped rule is deleted, so export and apply stay idempotent. Audited.
    """
    shipped = {rule.id: rule for rule in shipped_rules()}.get(rule_id)
    if shipped is None:
        raise InvalidOverride(_("ルール %(id)s はありません。", id=rule_id))
    if wanted.get("severity") not in (None, *Severity):
        raise InvalidOverride(_("重要度は warning（注意）か block（要承認）です。"))
    if wanted["severity"] == shipped.severity:
        wanted = {**wanted, "severity": None}  # as shipped: stays as shipped if the product changes it
    row = _row(organization_id, rule_id)
    before = state_of(row)
    if before == wanted:
        return False
    if wanted == state_of(None):
        db.session.delete(row)
    else:
        row = row or AdRuleOverride(organization_id=organization_id, rule_id=rule_id)
        row.enabled, row.severity = wanted["enabled"], wanted["severity"]
        row.extra_phrases, row.allowed_phrases = wanted["extra_phrases"], wanted["allowed_phrases"]
        db.session.add(row)
    record("adcheck.rule.update", target_type="organization", target_id=organization_id,
           details={"rule": rule_id, "before": before, "after": wanted})  # fmt: skip
    db.session.flush()
    return True


def save_from_form(organization_id: int, rule_id: str, form) -> str | None:
    """The portal form's values for one rule; commits. Returns the rule's title when changed."""
    titles = {rule.id: rule.title for rule in shipped_rules()}
    if form.get("reset") == "1":
        wanted = state_of(None)
    else:
        severity = form.get("severity") or None
        wanted = {
            "enabled": form.get("enabled") == "1",
            "severity": severity,
            "extra_phrases": _phrases(form.get("extra_phrases", "")),
            "allowed_phrases": _phrases(form.get("allowed_phrases", "")),
        }
    changed = put(organization_id, rule_id, wanted)
    db.session.commit()
    return titles.get(rule_id) if changed else None


def reset_missing(organization_id: int, keep: set[str]) -> list[str]:
    """Remove the overrides of rules not in ``keep`` (a manifest lists the whole set); their ids."""
    removed = []
    for rule in shipped_rules():
        if rule.id not in keep and put(organization_id, rule.id, state_of(None)):
            removed.append(rule.id)
    return removed
