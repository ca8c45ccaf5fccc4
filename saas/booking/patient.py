"""The patient booking pages (``/book/<clinic_slug>/``), opened from LINE: sign in with LINE
Login, pick a slot, confirm; change or cancel an existing booking."""

from __future__ import annotations

import secrets
from datetime import datetime
from functools import wraps

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, redirect, render_template, request, session, url_for
from flask_babel import gettext as _

from saas.booking import jobs, services
from saas.booking.models import Booking, BookingMode
from saas.common import parse_id
from saas.extensions import db
from saas.line import login as line_login
from saas.line.errors import LineError
from saas.reminders.jobs import schedule_booking_reminder
from saas.schedule.services import clinic_now
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import tenant_scope

bp = Blueprint("public", __name__, url_prefix="/book/<clinic_slug>")
FLOW_KEY = "line_login_flow"
PATIENT_KEY = "line_patients"


def with_clinic(view):
    """Load the clinic from the URL slug and run the view in its tenant scope."""

    @wraps(view)
    def wrapped(clinic_slug: str, **kwargs):
        clinic = db.session.scalar(sa.select(Clinic).where(Clinic.slug == clinic_slug))
        if clinic is None:
            abort(404)
        with tenant_scope(clinic.id):
            return view(clinic, **kwargs)

    return wrapped


def _channel(settings) -> line_login.LoginChannel:
    return line_login.LoginChannel(settings.login_channel_id, settings.login_channel_secret)


def _redirect_uri(clinic) -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + url_for(".callback", clinic_slug=clinic.slug)


def signed_in_patient(clinic) -> dict | None:
    """The LINE user signed in for this clinic in this browser session."""
    return (session.get(PATIENT_KEY) or {}).get(str(clinic.id))


@bp.get("/")
@with_clinic
def start(clinic):
    """Entry point from the rich menu: external system, sign-in, or the slot list."""
    settings = services.get_settings(clinic.id)
    if settings.mode == BookingMode.EXTERNAL and settings.external_url:
        return redirect(settings.external_url)
    if settings.mode != BookingMode.NATIVE or not settings.login_ready:
        return render_template(
            "booking/patient_message.html", clinic=clinic, message=_("現在、LINEからのご予約は受け付けていません。")
        ), 404
    patient = signed_in_patient(clinic)
    if patient is None:
        return redirect(url_for(".login", clinic_slug=clinic.slug, next=request.full_path))
    first, last = services.bookable_window(clinic)
    slots = services.open_slots(clinic, first, last)
    days: dict = {}
    for slot in slots:
        days.setdefault(slot.starts_at.date(), []).append(slot)
    return render_template(
        "booking/patient_slots.html",
        clinic=clinic,
        patient=patient,
        days=days,
        changing=_changing(clinic, patient),
        mine=services.patient_bookings(patient["sub"], upcoming_from=clinic_now(clinic)),
    )


def _changing(clinic, patient) -> Booking | None:
    raw = request.values.get("change", "")
    booking = db.session.get(Booking, parse_id(raw)) if parse_id(raw) else None
    return booking if booking and booking.line_user_id == patient["sub"] and booking.is_active else None


@bp.get("/login")
@with_clinic
def login(clinic):
    """Send the patient to LINE Login (state, nonce and PKCE verifier kept in the session)."""
    settings = services.get_settings(clinic.id)
    if not settings.login_ready:
        abort(404)
    flow = {
        "clinic": clinic.id,
        "state": secrets.token_urlsafe(24),
        "nonce": secrets.token_urlsafe(24),
        "verifier": secrets.token_urlsafe(48),
        "next": _safe_next(clinic, request.args.get("next")),
    }
    session[FLOW_KEY] = flow
    url = line_login.authorization_url(
        _channel(settings),
        _redirect_uri(clinic),
        state=flow["state"],
        nonce=flow["nonce"],
        code_verifier=flow["verifier"],
    )
    return redirect(url)


# Other patient pages that sign in through this LINE Login (one callback URL per clinic to register).
_RETURN_PREFIXES: list[str] = []


def accept_return_to(prefix: str) -> None:
    """Let LINE Login return to pages under ``/<prefix>/<clinic_slug>/`` (e.g. ``forms``)."""
    if prefix not in _RETURN_PREFIXES:
        _RETURN_PREFIXES.append(prefix)


def _safe_next(clinic, target: str | None) -> str:
    home = url_for(".start", clinic_slug=clinic.slug)
    allowed = (home, *(f"/{prefix}/{clinic.slug}/" for prefix in _RETURN_PREFIXES))
    return target if target and target.startswith(allowed) else home


@bp.get("/callback")
@with_clinic
def callback(clinic):
    """Back from LINE: exchange the code, verify the id_token, remember the patient."""
    flow = session.pop(FLOW_KEY, None)
    state = request.args.get("state", "")
    if not flow or flow["clinic"] != clinic.id or not secrets.compare_digest(state, flow["state"]):
        return _failed(clinic, _("ログインの有効期限が切れました。もう一度お試しください。"))
    if "error" in request.args or not request.args.get("code"):
        return _failed(clinic, _("LINEログインがキャンセルされました。"))
    settings = services.get_settings(clinic.id)
    try:
        tokens = line_login.exchange_code(
            _channel(settings), _redirect_uri(clinic), request.args["code"], flow["verifier"]
        )
        identity = line_login.verify_id_token(tokens.get("id_token", ""), _channel(settings), nonce=flow["nonce"])
    except line_login.IdTokenInvalid as exc:
        current_app.logger.warning("LINE Login id_token refused for clinic %s: %s", clinic.id, exc.reason)
        return _failed(clinic, _("LINEログインを確認できませんでした。もう一度お試しください。"))
    except LineError as exc:
        current_app.logger.warning("LINE Login failed for clinic %s: %s", clinic.id, exc)
        return _failed(clinic, _("LINEログインに失敗しました。時間をおいてお試しください。"))
    patients = dict(session.get(PATIENT_KEY) or {})
    patients[str(clinic.id)] = {"sub": identity.user_id, "name": identity.name}
    session[PATIENT_KEY] = patients
    return redirect(flow["next"])


def _failed(clinic, message: str):
    return render_template("booking/patient_message.html", clinic=clinic, message=message), 400


def _patient_or_login(clinic):
    patient = signed_in_patient(clinic)
    if patient is None:
        abort(redirect(url_for(".login", clinic_slug=clinic.slug)))
    return patient


def _slot_time() -> datetime:
    try:
        return datetime.strptime(request.values.get("at", ""), "%Y-%m-%dT%H:%M")
    except ValueError:
        abort(400)


@bp.get("/confirm")
@with_clinic
def confirm(clinic):
    """The confirmation step for one slot."""
    patient = _patient_or_login(clinic)
    starts_at = _slot_time()
    try:
        slot = services.find_open_slot(clinic, starts_at)
    except services.BookingRefused as exc:
        return render_template("booking/patient_message.html", clinic=clinic, message=exc.message), 409
    return render_template(
        "booking/patient_confirm.html", clinic=clinic, patient=patient, slot=slot, changing=_changing(clinic, patient)
    )


@bp.post("/confirm")
@with_clinic
def book(clinic):
    """Take the seat (or move the booking) and queue the confirmation message in LINE."""
    patient = _patient_or_login(clinic)
    starts_at, changing = _slot_time(), _changing(clinic, patient)
    try:
        if changing is not None:
            booking = services.change(clinic, changing, starts_at)
        else:
            booking = services.book(
                clinic, line_user_id=patient["sub"], patient_name=patient["name"], starts_at=starts_at
            )
    except services.BookingRefused as exc:
        return render_template("booking/patient_message.html", clinic=clinic, message=exc.message, retry=True), 409
    jobs.enqueue_confirmation(booking, "change" if changing is not None else "confirmation")
    schedule_booking_reminder(booking)
    return render_template("booking/patient_done.html", clinic=clinic, booking=booking, changed=changing is not None)


@bp.post("/cancel/<int:booking_id>")
@with_clinic
def cancel(clinic, booking_id: int):
    """The patient cancels one of their bookings from the page."""
    patient = _patient_or_login(clinic)
    booking = db.session.get(Booking, booking_id)
    if booking is None or booking.line_user_id != patient["sub"]:
        abort(404)
    services.cancel(booking, by="patient")
    return redirect(url_for(".start", clinic_slug=clinic.slug))
