"""Portal pages: the weekly schedule editor and the closures / 代診 list."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas import billing
from saas.extensions import db
from saas.portal.menu import register
from saas.schedule import services
from saas.schedule.models import WEEKDAY_LABELS, Closure, ClosureKind, UrgentNoticeRequest
from saas.tenancy.access import current_clinic, require

bp = Blueprint("schedule", __name__, url_prefix="/c/<clinic>/schedule")
register("schedule.weekly", _l("診療スケジュール"), "◷", "clinic.view", order=30)

ROWS_PER_DAY = services.ROWS_PER_DAY


@bp.get("/")
@login_required
@require("clinic.view")
def weekly():
    """The weekly timetable, the next two weeks as patients will hear them, and closures."""
    clinic = current_clinic()
    today = services.clinic_now(clinic).date()
    return render_template(
        "schedule/weekly.html",
        week=services.weekly_blocks(clinic.id),
        weekday_labels=WEEKDAY_LABELS,
        rows_per_day=ROWS_PER_DAY,
        settings=services.get_settings(clinic.id),
        upcoming=services.hours_between(clinic, today, today + timedelta(days=13)),
        closures=services.upcoming_closures(clinic, today, days=365),
        pending={r.closure_id: r for r in services.pending_urgent_notices(clinic.id)},
        today=today,
    )


@bp.post("/")
@login_required
@require("schedule.edit")
def save_weekly():
    clinic = current_clinic()
    blocks, errors = services.blocks_from_form(request.form)
    if errors:
        for error in errors:
            flash(error, "error")
        return redirect(url_for("schedule.weekly"))
    services.replace_weekly(
        clinic.id, blocks, closed_on_public_holidays=bool(request.form.get("closed_on_public_holidays"))
    )
    db.session.commit()
    flash(_("診療時間を保存しました。自動応答と挨拶メッセージにすぐ反映されます。"), "success")
    return redirect(url_for("schedule.weekly"))


def _closure_from_form(form, closure: Closure) -> str | None:
    try:
        starts_on = date.fromisoformat(form.get("starts_on", ""))
        ends_on = date.fromisoformat(form.get("ends_on") or form.get("starts_on", ""))
    except ValueError:
        return _("日付を入力してください")
    if ends_on < starts_on:
        return _("終了日が開始日より前です")
    closure.kind = form.get("kind") if form.get("kind") in set(ClosureKind) else ClosureKind.CLOSED
    closure.starts_on, closure.ends_on = starts_on, ends_on
    closure.blocks = ",".join(form.getlist("blocks"))
    closure.reason = form.get("reason", "").strip()[:300]
    closure.substitute_doctor = form.get("substitute_doctor", "").strip()[:120]
    return None


NOTIFY_CHOICES = ("none", "urgent", "consenting")


def _notify_choice(form) -> str:
    if form.get("skip_send") == "1":
        return "none"
    choice = form.get("notify") or ("urgent" if form.get("notify_friends") else "none")
    return choice if choice in NOTIFY_CHOICES else "none"


def _send_preview(clinic, closure: Closure, choice: str) -> dict:
    """What sending would do: how many friends, the exact text, urgent or not."""
    from saas.delivery import audience

    counts = audience.count_audience("urgent" if choice == "urgent" else "broadcast")
    return {"choice": choice, "recipients": counts.eligible, "text": services.notice_text(clinic, closure)}


def _send_to_consenting_friends(clinic, closure: Closure) -> None:
    """An ordinary broadcast (friends with marketing consent only), started now."""
    from flask_login import current_user

    from saas.delivery import services as deliveries

    text = services.notice_text(clinic, closure)
    delivery = deliveries.create_delivery(messages=[{"type": "text", "text": text}], actor=current_user)
    db.session.commit()
    deliveries.submit(delivery)


def _save_closure(clinic, closure: Closure, choice: str):
    closure.notify_friends = choice == "urgent"
    db.session.add(closure)
    db.session.flush()
    if choice == "urgent":
        services.request_urgent_notice(clinic.id, closure.id)
    db.session.commit()
    if choice == "consenting":
        try:
            _send_to_consenting_friends(clinic, closure)
        except billing.MarketingPaused as paused:
            flash(_("保存しました。") + _(str(paused)), "danger")
            return redirect(url_for("schedule.weekly"))
    messages = {
        "none": _(
            "保存しました。「今日の診療時間」の自動応答と挨拶メッセージに反映されます。友だちへの送信はしていません。"
        ),
        "urgent": _("保存しました。緊急のお知らせを友だちに送信しています。進み具合は配信履歴で確認できます。"),
        "consenting": _(
            "保存しました。お知らせを配信に同意した友だちに送信しています。進み具合は配信履歴で確認できます。"
        ),
    }
    flash(messages[choice], "success")
    return redirect(url_for("schedule.weekly"))


@bp.route("/closures/new", methods=["GET", "POST"])
@bp.route("/closures/<int:closure_id>", methods=["GET", "POST"])
@login_required
@require("schedule.edit")
def edit_closure(closure_id: int | None = None):
    """Add or change a 休診 / 代診. Sending it to friends is a choice shown before it happens:
    the first POST with a sending choice only previews (recipients, text, urgent or not)."""
    clinic = current_clinic()
    closure = db.session.get(Closure, closure_id) if closure_id else Closure(kind=ClosureKind.CLOSED)
    if closure is None:
        abort(404)
    preview, choice = None, "none"
    if request.method == "POST":
        error, choice = _closure_from_form(request.form, closure), _notify_choice(request.form)
        if error is None and (choice == "none" or request.form.get("confirm_send") == "1"):
            return _save_closure(clinic, closure, choice)
        if error is None:
            preview = _send_preview(clinic, closure, choice)
        else:
            flash(error, "error")
    labels = sorted({b.label for blocks in services.weekly_blocks(clinic.id).values() for b in blocks if b.label})
    page = render_template(
        "schedule/closure_form.html", closure=closure, block_labels=labels, preview=preview, choice=choice
    )
    db.session.rollback()  # a preview saves nothing
    return page


@bp.post("/closures/<int:closure_id>/delete")
@login_required
@require("schedule.edit")
def delete_closure(closure_id: int):
    closure = db.session.get(Closure, closure_id) or abort(404)
    db.session.execute(
        sa.update(UrgentNoticeRequest)
        .where(UrgentNoticeRequest.closure_id == closure.id, UrgentNoticeRequest.status == "pending")
        .values(status="cancelled")
    )
    db.session.delete(closure)
    db.session.commit()
    flash(_("休診・代診を削除しました。"), "success")
    return redirect(url_for("schedule.weekly"))
