"""Booking pages: the staff view by day and week (no-shows, cancel, closure warnings),
booking settings, and the patient pages (``patient.bp``) nested under one blueprint."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.audit.services import record
from saas.booking import notices, notify, patient, postbacks, services
from saas.booking.models import Booking, BookingMode, BookingStatus
from saas.extensions import db
from saas.portal.menu import register
from saas.schedule.services import clinic_now
from saas.tenancy.access import current_clinic, require

bp = Blueprint("booking", __name__)
staff = Blueprint("staff", __name__, url_prefix="/c/<clinic>/booking")
register("booking.staff.day", _l("予約"), "▦", "clinic.view", order=35)


FRIEND_PAGE_BOOKINGS = 10


@bp.app_context_processor
def _friend_section() -> dict:
    """The friend page asks for the friend's bookings when it renders."""
    return {"friend_bookings": friend_bookings}


def friend_bookings(friend) -> list[Booking]:
    """The friend's newest bookings (by the friend_id index)."""
    newest = sa.select(Booking).where(Booking.friend_id == friend.id).order_by(Booking.starts_at.desc())
    return list(db.session.scalars(newest.limit(FRIEND_PAGE_BOOKINGS)))


def _day_arg() -> date:
    try:
        return date.fromisoformat(request.args.get("day", ""))
    except ValueError:
        return clinic_now(current_clinic()).date()


@staff.get("/")
@login_required
@require("clinic.view")
def day():
    """Bookings of one day or one week, with closure conflicts to tell patients about."""
    clinic = current_clinic()
    first = _day_arg()
    week = request.args.get("view") == "week"
    if week:
        first -= timedelta(days=first.weekday())
    days = 7 if week else 1
    start = datetime.combine(first, datetime.min.time())
    bookings = services.bookings_between(start, start + timedelta(days=days))
    conflicts = services.closure_conflicts(clinic)
    by_day: dict = {first + timedelta(days=n): [] for n in range(days)}
    for booking in bookings:
        by_day.setdefault(booking.starts_at.date(), []).append(booking)
    return render_template(
        "booking/staff_day.html",
        first=first,
        week=week,
        by_day=by_day,
        step=timedelta(days=days),
        conflicts=conflicts,
        notice_states=notices.states(clinic.id, bookings, conflicts),
        settings=services.get_settings(clinic.id),
        statuses=BookingStatus,
        when=notify.when,
    )


def _booking(booking_id: int) -> Booking:
    return db.get_or_404(Booking, booking_id)  # another clinic's row is invisible: 404


def _back(booking: Booking):
    return redirect(url_for(".day", day=booking.starts_at.date().isoformat(), view=request.args.get("view")))


@staff.post("/<int:booking_id>/status")
@login_required
@require("booking.manage")
def set_status(booking_id: int):
    """Mark visited / no-show (or undo)."""
    booking = _booking(booking_id)
    status = request.form.get("status", "")
    if (
        status not in {BookingStatus.VISITED, BookingStatus.NO_SHOW, BookingStatus.CONFIRMED}
        or booking.status == BookingStatus.CANCELLED
    ):
        abort(400)
    services.mark(booking, status)
    record(
        "booking.status",
        clinic_id=booking.clinic_id,
        target_type="booking",
        target_id=booking.id,
        details={"status": status},
        commit=True,
    )
    return _back(booking)


@staff.post("/<int:booking_id>/cancel")
@login_required
@require("booking.manage")
def cancel(booking_id: int):
    """Cancel on the patient's behalf (a phone call); a worker tells them in LINE."""
    clinic, booking = current_clinic(), _booking(booking_id)
    if services.cancel(booking, by="staff"):
        record("booking.cancel", clinic_id=clinic.id, target_type="booking", target_id=booking.id, commit=True)
        notices.enqueue(notices.CANCELLATION, booking)
        flash(_("予約をキャンセルしました。患者さんへのLINEのお知らせは送信予約済みです。"), "success")
    return _back(booking)


@staff.post("/<int:booking_id>/notify-closure")
@login_required
@require("booking.manage")
def notify_closure(booking_id: int):
    """Queue the closure notice to the patient of a booking that falls on a new closure."""
    clinic, booking = current_clinic(), _booking(booking_id)
    if booking.is_active and booking.closure_notified_at is None and notices.enqueue(notices.CLOSURE, booking):
        record("booking.closure_notice", clinic_id=clinic.id, target_type="booking", target_id=booking.id, commit=True)
        flash(_("休診のお知らせを送信予約しました。"), "success")
    return redirect(url_for(".day"))


@staff.route("/settings", methods=["GET", "POST"])
@login_required
@require("clinic.settings")
def settings():
    """Booking mode, slot length and capacity, reminder hour, the LINE Login channel."""
    clinic = current_clinic()
    found = services.get_settings(clinic.id)
    if request.method == "POST":
        errors = _apply_settings(found, request.form)
        if not errors:
            db.session.commit()
            record("booking.settings", clinic_id=clinic.id, target_type="clinic", target_id=clinic.id, commit=True)
            flash(_("予約設定を保存しました。"), "success")
            return redirect(url_for(".settings"))
        db.session.rollback()
        for error in errors:
            flash(error, "danger")
    return render_template(
        "booking/settings.html", settings=found, modes=BookingMode, page_url=postbacks.booking_page_url(clinic)
    )


def _int(form, name: str, low: int, high: int, errors: list[str], label: str) -> int | None:
    try:
        value = int(form.get(name, ""))
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        errors.append(_("%(label)sは%(low)s〜%(high)sで入力してください", label=label, low=low, high=high))
        return None
    return value


def _apply_settings(found, form) -> list[str]:
    errors: list[str] = []
    mode = form.get("mode", BookingMode.OFF)
    if mode not in set(BookingMode):
        errors.append(_("予約方式が正しくありません"))
    external = form.get("external_url", "").strip()
    if mode == BookingMode.EXTERNAL and not external.startswith("https://"):
        errors.append(_("外部予約システムのURLは https:// で始まる必要があります"))
    numbers = {
        "slot_minutes": _int(form, "slot_minutes", 5, 240, errors, _("1枠の長さ（分）")),
        "capacity_per_slot": _int(form, "capacity_per_slot", 1, 100, errors, _("1枠の定員")),
        "days_ahead": _int(form, "days_ahead", 1, 180, errors, _("受付期間（日）")),
        "reminder_hour": _int(form, "reminder_hour", 0, 23, errors, _("リマインド時刻")),
    }
    if errors:
        return errors
    found.mode, found.external_url = mode, external
    for name, value in numbers.items():
        setattr(found, name, value)
    found.reminders_enabled = bool(form.get("reminders_enabled"))
    found.login_channel_id = form.get("login_channel_id", "").strip() or None
    if form.get("login_channel_secret", "").strip():
        found.login_channel_secret = form["login_channel_secret"].strip()
    if mode == BookingMode.NATIVE and not found.login_ready:
        errors.append(_("LINEログインのチャネルIDとチャネルシークレットを入力してください"))
    return errors


bp.register_blueprint(staff)
bp.register_blueprint(patient.bp)
