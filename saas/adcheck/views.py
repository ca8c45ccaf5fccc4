"""The live check (JSON, used by frontend/static/js/adcheck.js), the rules in force at a clinic, and
an organization administrator's overrides page."""

from __future__ import annotations

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from saas.adcheck import overrides, services
from saas.adcheck.rules import Severity, shipped_rules
from saas.groups import services as groups
from saas.library.models import Level
from saas.portal import menu
from saas.tenancy.access import current_clinic, require

bp = Blueprint("adcheck", __name__)
MAX_CHECK_CHARS = 20_000
SEVERITY_LABELS = {Severity.WARNING: _l("注意"), Severity.BLOCK: _l("要承認")}


@bp.app_context_processor
def _labels():
    def panel_labels() -> dict:
        """The live panel's words (adcheck.js), in the page's language."""
        return {
            "labelWarning": str(SEVERITY_LABELS[Severity.WARNING]),
            "labelBlock": str(SEVERITY_LABELS[Severity.BLOCK]),
            "labelJump": _("該当箇所を選択"),
            "labelMissing": _("記載がない項目"),
            "labelSource": _("根拠"),
        }

    return {"adcheck_severities": SEVERITY_LABELS, "adcheck_panel_labels": panel_labels, "rule_text": rule_text}


def rule_text(text: str) -> str:
    """A rule's title, explanation or note in the page's language (a Python call: "100%" is not a format)."""
    return _(text)


def _in_words(finding: dict) -> dict:
    return {**finding, "title": rule_text(finding["title"]), "explanation": rule_text(finding["explanation"]),
            "missing": [rule_text(label) for label in finding["missing"]]}  # fmt: skip


def _texts_from(payload) -> dict[str, str] | None:
    if not isinstance(payload, dict):
        return None
    texts = payload.get("texts", {"": payload.get("text", "")})
    if not isinstance(texts, dict) or not all(isinstance(v, str) for v in texts.values()):
        return None
    if sum(len(v) for v in texts.values()) > MAX_CHECK_CHARS:
        return None
    return {str(k): v for k, v in texts.items()}


@bp.post("/c/<clinic>/adcheck/check")
@login_required
@require("clinic.view")
def check():
    """JSON ``{"text": …}`` or ``{"texts": {field: text}}`` → ``{"findings": [...]}`` with spans."""
    texts = _texts_from(request.get_json(silent=True))
    if texts is None:
        return jsonify(
            {"error": _("チェックする文章を送ってください（合計%(n)s文字まで）。", n=f"{MAX_CHECK_CHARS:,}")}
        ), 400
    findings = services.check_texts(current_clinic(), texts)
    return jsonify({"findings": [_in_words(f.as_dict()) for f in findings]})


@bp.get("/c/<clinic>/adcheck")
@login_required
@require("clinic.view")
def rules():
    """The rules in force at this clinic, in plain Japanese, with a link to edit them for org admins."""
    clinic = current_clinic()
    organization = groups.level_of_clinic(clinic, Level.ORGANIZATION)
    editable = organization if organization and groups.can_manage(current_user, organization) else None
    return render_template(
        "adcheck/rules.html", rules=services.rules_for(clinic.organization_id), editable=editable,
        shipped={rule.id: rule for rule in shipped_rules()},
    )  # fmt: skip


def _organization(slug: str):
    shared = groups.find_level(Level.ORGANIZATION, slug)
    if not groups.can_manage(current_user, shared):
        abort(404)  # another organization's settings are not even acknowledged
    return shared


@bp.get("/organizations/<slug>/adcheck")
@login_required
def organization_rules(slug: str):
    """An organization administrator's page: each shipped rule and the organization's changes to it."""
    shared = _organization(slug)
    return render_template(
        "adcheck/organization.html", shared=shared, rules=shipped_rules(),
        overrides={row.rule_id: row for row in services.overrides_for(shared.id)},
    )  # fmt: skip


@bp.post("/organizations/<slug>/adcheck/<rule_id>")
@login_required
def save_override(slug: str, rule_id: str):
    """Save one rule's override (or go back to the shipped rule); audited with before and after."""
    shared = _organization(slug)
    try:
        changed = overrides.save_from_form(shared.id, rule_id, request.form)
    except overrides.InvalidOverride as problem:
        flash(str(problem), "danger")
        return redirect(url_for(".organization_rules", slug=slug, _anchor=f"rule-{rule_id}"))
    if changed:
        flash(_("ルール「%(rule)s」の設定を保存しました。", rule=changed), "success")
    return redirect(url_for(".organization_rules", slug=slug, _anchor=f"rule-{rule_id}"))


menu.register("adcheck.rules", _l("医療広告チェック"), "⚖", "clinic.view", order=68)
