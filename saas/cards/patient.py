"""The patient's card pages (``/book/<clinic_slug>/card``), opened from LINE.

Stamping: LINE's camera opens the desk QR's URL; the token is checked at once (so a photo of
an old QR fails), kept in the session while the patient signs in with LINE Login, and
used within a few minutes of that check.
"""

from __future__ import annotations

import time

from flask import Blueprint, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from saas.booking.patient import with_clinic
from saas.cards import services
from saas.coupons.patient import message, patient_friend
from saas.coupons.qr import qr_svg
from saas.extensions import db

CARD_TITLE = _l("ショップカード")  # the patient pages' heading under the clinic name
bp = Blueprint("public", __name__, url_prefix="/book/<clinic_slug>/card")
PENDING_KEY = "card_stamp_pending"


def _card_page(clinic, patient, friend, stamped=None, refused=None, status: int = 200):
    settings = services.get_settings(clinic.id)
    card = services.card_for(friend) if friend is not None else None
    db.session.commit()  # a card created on the first visit of the page
    return render_template(
        "cards/patient_card.html", clinic=clinic, patient=patient, settings=settings, card=card,
        rewards=services.rewards(), stamped=stamped, refused=refused,
        qr=qr_svg(services.card_token(card), scale=4) if card else None,
    ), status  # fmt: skip


@bp.get("/")
@with_clinic
def show(clinic):
    """The patient's card: points, stamps, rewards, and a QR for staff to scan."""
    if not services.get_settings(clinic.id).enabled:
        return message(clinic, _("この医療機関ではショップカードを使っていません。"), 404, subtitle=CARD_TITLE)
    patient, friend = patient_friend(clinic)
    if friend is None:
        return message(
            clinic, _("ショップカードを使うには、LINEで当院を友だち追加してください。"), 403, subtitle=CARD_TITLE
        )
    return _card_page(clinic, patient, friend)


@bp.get("/stamp")
@with_clinic
def stamp(clinic):
    """Opened from the desk QR: check it now, then stamp (after LINE Login if needed)."""
    try:
        token = services.check_desk_token(clinic, request.args.get("t", ""))
    except services.StampRefused as refused:
        return message(clinic, refused.reason, 410 if refused.kind == "expired" else 400, subtitle=CARD_TITLE)
    session[PENDING_KEY] = {"clinic": clinic.id, "token": token.raw, "checked": time.time()}
    return redirect(url_for(".finish", clinic_slug=clinic.slug))


@bp.get("/stamp/finish")
@with_clinic
def finish(clinic):
    """The stamp itself, once the patient is known; the desk token is used once, here."""
    patient, friend = patient_friend(clinic)  # may send the patient to LINE Login and back here
    pending = session.pop(PENDING_KEY, None)
    if not pending or pending.get("clinic") != clinic.id:
        return message(
            clinic, _("受付に表示されているQRコードを、LINEのカメラで読み取ってください。"), 400, subtitle=CARD_TITLE
        )
    if friend is None:
        return message(
            clinic, _("スタンプを受け取るには、LINEで当院を友だち追加してください。"), 403, subtitle=CARD_TITLE
        )
    try:
        if time.time() - pending["checked"] > services.PENDING_LOGIN_SECONDS:
            raise services.StampRefused(
                "expired", _("時間が経ったため、スタンプを押せませんでした。もう一度QRコードを読み取ってください。")
            )
        lifetime = services.PENDING_LOGIN_SECONDS + services.get_settings(clinic.id).qr_seconds
        token = services.check_desk_token(clinic, pending["token"], lifetime=lifetime)
        stamped = services.stamp(friend, method="desk_qr", nonce=token.subject)
    except services.StampRefused as refused:
        return _card_page(clinic, patient, friend, refused=refused, status=409)
    return _card_page(clinic, patient, friend, stamped=stamped)
