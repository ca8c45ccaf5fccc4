"""The patient's coupon page (``/book/<clinic_slug>/coupons/<public_id>``), opened from LINE.

The patient is identified by LINE Login, through the booking pages' sign-in (the same LINE
Login channel and callback URL); the page issues their ticket and shows its code, a QR of it
and its state.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _

from saas.booking import services as booking
from saas.booking.patient import signed_in_patient, with_clinic
from saas.coupons import services
from saas.coupons.models import Coupon, CouponStatus
from saas.coupons.qr import qr_svg
from saas.extensions import db
from saas.friends.models import Friend

bp = Blueprint("public", __name__, url_prefix="/book/<clinic_slug>/coupons")


def message(clinic, text: str, status: int = 200, *, subtitle: str | None = None):
    """A patient page with one notice (not signed in to LINE, not a friend, ...); ``subtitle`` names
    the page under the clinic's name (「LINEクーポン」 unless told)."""
    page = render_template("coupons/patient_message.html", clinic=clinic, message=text, subtitle=subtitle)
    return page, status


def patient_friend(clinic):
    """(patient, friend) of the LINE user signed in for this clinic; a redirect to LINE Login
    when nobody is, a notice when LINE Login is not set up or they are not a friend."""
    if not booking.get_settings(clinic.id).login_ready:
        abort(
            make_response(message(clinic, _("LINEログインが設定されていないため、このページは表示できません。"), 404))
        )
    patient = signed_in_patient(clinic)
    if patient is None:
        abort(redirect(url_for("booking.public.login", clinic_slug=clinic.slug, next=request.full_path)))
    friend = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == patient["sub"]))
    return patient, friend


@bp.get("/<public_id>")
@with_clinic
def show(clinic, public_id: str):
    """The coupon with the patient's code and its state (使えます / 使用済み / 有効期限切れ ...)."""
    coupon = db.session.scalar(sa.select(Coupon).where(Coupon.public_id == public_id))
    if coupon is None or coupon.status == CouponStatus.DRAFT:
        return message(clinic, _("このクーポンは見つかりません。"), 404)
    patient, friend = patient_friend(clinic)
    if friend is None:
        return message(clinic, _("クーポンを受け取るには、LINEで当院を友だち追加してください。"), 403)
    ticket = services.ticket_of(coupon, friend)
    if ticket is None and services.reaches(coupon, friend) and coupon.status == CouponStatus.RUNNING:
        delivery_id = services.attributed_delivery(coupon, request.args.get("d"))
        ticket = services.issue_ticket(
            coupon, friend, delivery_id=delivery_id, origin="delivery" if delivery_id else "page"
        )
    if ticket is None:
        return message(clinic, _("このクーポンは対象の方にだけお届けしています。"), 403)
    state = services.ticket_state(coupon, ticket)
    first, last = services.local_days(coupon)
    return render_template(
        "coupons/patient_coupon.html", clinic=clinic, patient=patient, coupon=coupon, ticket=ticket, state=state,
        state_label=_(services.STATE_LABELS[state]), first=first, last=last,
        qr=qr_svg(ticket.code) if state == "usable" else None,
    )  # fmt: skip
