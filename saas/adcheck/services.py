"""The advertising check for a clinic: its organization's rules, compiled once, applied to texts.

Other capabilities call :func:`check_text`, :func:`check_messages` or :func:`gate` (see README.md).
"""

from __future__ import annotations

import sqlalchemy as sa

from saas.adcheck.checker import CompiledRuleSet, Finding
from saas.adcheck.models import AdRuleOverride
from saas.adcheck.rules import Override, Rule, Severity, shipped_rule_ids, shipped_rules, with_overrides
from saas.extensions import db

_compiled: dict[int | None, tuple[tuple, CompiledRuleSet]] = {}


def overrides_for(organization_id: int | None) -> list[AdRuleOverride]:
    """The organization's override rows, in rule order of the shipped set."""
    if organization_id is None:
        return []
    rows = db.session.scalars(sa.select(AdRuleOverride).where(AdRuleOverride.organization_id == organization_id))
    order = {rule_id: i for i, rule_id in enumerate(shipped_rule_ids())}
    return sorted(rows, key=lambda row: order.get(row.rule_id, len(order)))


def _as_override(row: AdRuleOverride) -> Override:
    return Override(
        row.rule_id, row.enabled, row.severity, tuple(row.extra_phrases or ()), tuple(row.allowed_phrases or ())
    )


def rules_for(organization_id: int | None) -> tuple[Rule, ...]:
    """The rules in force for an organization's clinics."""
    return with_overrides(shipped_rules(), [_as_override(row) for row in overrides_for(organization_id)])


def compiled_for(organization_id: int | None) -> CompiledRuleSet:
    """The organization's compiled rules; recompiled only when one of its overrides changed."""
    rows = overrides_for(organization_id)
    stamp = tuple((row.rule_id, row.updated_at, row.id) for row in rows)
    cached = _compiled.get(organization_id)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    compiled = CompiledRuleSet(with_overrides(shipped_rules(), [_as_override(row) for row in rows]))
    _compiled[organization_id] = (stamp, compiled)
    return compiled


def check_text(clinic, text: str, *, field: str = "") -> list[Finding]:
    """Findings in one text written for ``clinic`` (its organization's rules)."""
    return compiled_for(clinic.organization_id).check(text or "", field_name=field)


def check_texts(clinic, texts: dict[str, str]) -> list[Finding]:
    """Findings in several texts of one form or send; required notes count wherever they are written."""
    context = "\n".join(t for t in texts.values() if t)
    compiled = compiled_for(clinic.organization_id)
    return [f for name, text in texts.items() if text for f in compiled.check(text, context=context, field_name=name)]


def message_texts(messages: list[dict]) -> dict[str, str]:
    """Every text a patient would read in LINE message objects, keyed ``messages[i]`` (and ``.alt``)."""
    texts: dict[str, str] = {}
    for index, message in enumerate(messages or []):
        found: list[str] = []
        _collect_texts(message, found)
        texts[f"messages[{index}]"] = "\n".join(found)
    return texts


_TEXT_KEYS = ("text", "altText", "title", "label", "displayText")


def _collect_texts(node, found: list[str]) -> None:
    if isinstance(node, dict):
        found.extend(node[key] for key in _TEXT_KEYS if isinstance(node.get(key), str))
        for key, value in node.items():
            if key not in _TEXT_KEYS:
                _collect_texts(value, found)
    elif isinstance(node, list):
        for value in node:
            _collect_texts(value, found)


def check_messages(clinic, messages: list[dict]) -> list[Finding]:
    """Findings in the message objects of a send."""
    return check_texts(clinic, message_texts(messages))


def has_block(findings: list[Finding]) -> bool:
    return any(f.severity == Severity.BLOCK for f in findings)


def has_warning(findings: list[Finding]) -> bool:
    return any(f.severity == Severity.WARNING for f in findings)


def summary(findings: list[Finding]) -> list[dict]:
    """What the audit log keeps of findings: rule, severity and the phrase (template text, not patient text)."""
    return [{"rule": f.rule_id, "severity": f.severity, "phrase": f.phrase[:60]} for f in findings]
