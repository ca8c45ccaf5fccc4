"""The clinic's retention settings page (owners and admins)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.audit.services import record
from saas.common import MAX_DAYS, parse_id
from saas.extensions import db
from saas.portal import menu
from saas.retention import models, services
from saas.tenancy.access import current_clinic, require

bp = Blueprint("retention", __name__, url_prefix="/c/<clinic>/retention")
menu.register("retention.settings", _l("データ保存期間"), "⌛", "clinic.settings", order=86)


def _days(name: str, low: int, high: int | None, errors: list[str], *, optional: bool = False) -> int | None:
    text = request.form.get(name, "").strip()
    if optional and text == "":
        return None
    days = parse_id(text)
    if days is None or days < low or (high is not None and days > high):
        limit = f"{low}〜{high}" if high is not None else f"{low}〜"
        errors.append(_("%(field)s は %(range)s 日の範囲で入力してください。", field=_(LABELS[name]), range=limit))
        return None
    return days


LABELS = {
    "message_body_days": "メッセージ本文",
    "webhook_event_days": "Webhookイベント",
    "delivery_recipient_days": "配信の宛先記録",
}


def _read_form() -> tuple[dict, list[str]]:
    errors: list[str] = []
    values = {
        "message_body_days": _days("message_body_days", models.MESSAGE_BODY_MIN_DAYS, MAX_DAYS, errors, optional=True),
        "webhook_event_days": _days("webhook_event_days", *models.WEBHOOK_EVENT_RANGE, errors),
        "delivery_recipient_days": _days("delivery_recipient_days", *models.DELIVERY_RECIPIENT_RANGE, errors),
    }
    return values, errors


@bp.route("", methods=["GET", "POST"])
@login_required
@require("clinic.settings")
def settings():
    """How long this clinic keeps message bodies, webhook events and send bookkeeping."""
    policy = services.policy_for(current_clinic().id)
    errors: list[str] = []
    if request.method == "POST":
        values, errors = _read_form()
        if not errors:
            for name, value in values.items():
                setattr(policy, name, value)
            record("retention.settings", target_type="retention_policy", details=values)
            db.session.commit()
            flash(_("データ保存期間を保存しました。"), "success")
            return redirect(url_for("retention.settings"))
        db.session.rollback()
    else:
        db.session.commit()  # the row, created with the defaults on first view
    return render_template(
        "retention/settings.html",
        policy=policy,
        form=request.form if errors else None,
        errors=errors,
        minimum=models.MESSAGE_BODY_MIN_DAYS,
        webhook_range=models.WEBHOOK_EVENT_RANGE,
        recipient_range=models.DELIVERY_RECIPIENT_RANGE,
    ), 422 if errors else 200
