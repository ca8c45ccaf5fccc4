"""Change and cancel from LINE: postbacks ``booking:change:<id>``, ``booking:cancel:<id>[:yes]``."""

from __future__ import annotations

from flask import current_app

from saas.booking import notify, services
from saas.booking.models import Booking
from saas.common import parse_id
from saas.extensions import db
from saas.friends.hooks import register_postback_handler


def booking_page_url(clinic, **query) -> str:
    """The patient booking page of a clinic (absolute, for LINE messages and rich menus)."""
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    suffix = "&".join(f"{k}={v}" for k, v in query.items())
    return f"{base}/book/{clinic.slug}/" + (f"?{suffix}" if suffix else "")


def _text(text: str) -> list[dict]:
    return [{"type": "text", "text": text}]


def _own_booking(friend, booking_id: str) -> Booking | None:
    booking = db.session.get(Booking, parse_id(booking_id)) if parse_id(booking_id) else None
    return booking if booking is not None and booking.line_user_id == friend.line_user_id else None


@register_postback_handler("booking:")
def answer_booking_postback(clinic, friend, event) -> list[dict] | None:
    """Ask before cancelling, cancel on 'yes', or send the link to pick a new time."""
    parts = ((event.get("postback") or {}).get("data") or "").split(":")
    if parts[1:] == ["keep"]:
        return _text("承知しました。ご予約はそのままです。")
    if len(parts) < 3:
        return None
    action, booking = parts[1], _own_booking(friend, parts[2])
    if booking is None:
        return _text("ご予約が見つかりませんでした。")
    if not booking.is_active:
        return _text("このご予約はすでにキャンセル済みです。")
    if action == "change":
        return [_link("ご予約の日時を変更します。下のボタンから新しい日時をお選びください。", clinic, booking)]
    if action == "cancel" and parts[3:] == ["yes"]:
        services.cancel(booking, by="patient")
        return notify.cancelled(clinic, booking)
    if action == "cancel":
        return [_confirm_cancel(booking)]
    return None


def _link(text: str, clinic, booking: Booking) -> dict:
    url = booking_page_url(clinic, change=booking.id)
    return {
        "type": "template",
        "altText": text,
        "template": {"type": "buttons", "text": text, "actions": [{"type": "uri", "label": "日時を選ぶ", "uri": url}]},
    }


def _confirm_cancel(booking: Booking) -> dict:
    text = f"{notify.when(booking.starts_at)}のご予約をキャンセルしますか？"
    return {
        "type": "template",
        "altText": text,
        "template": {
            "type": "confirm",
            "text": text,
            "actions": [
                {"type": "postback", "label": "はい", "data": f"booking:cancel:{booking.id}:yes"},
                {"type": "postback", "label": "いいえ", "data": "booking:keep"},
            ],
        },
    }
