"""What patients receive about their bookings, sent as single pushes.

Every push carries a retry key stored on the booking (a retried push is never delivered
twice), is counted against the clinic's plan through the quota reservation, and leaves the
friend a receipt (``saas.receipts``) committed with the caller's "sent" state.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa

from saas import line
from saas.booking.models import Booking
from saas.extensions import db
from saas.friends.models import Friend
from saas.line.errors import LineError, LineRetryKeyAccepted
from saas.quota import counter as quota
from saas.receipts import services as receipts
from saas.schedule.services import format_day

log = logging.getLogger(__name__)


def when(starts_at: datetime) -> str:
    """「6月3日（火）10:30」."""
    return f"{format_day(starts_at.date())} {starts_at:%H:%M}"


def push_once(
    clinic,
    user_id: str,
    messages: list[dict],
    retry_key: str,
    purpose: str,
    *,
    source: str,
    friend_id: int | None = None,
    ref_id: int | None = None,
) -> None:
    """Push to one patient, counted against the plan; a repeat of an accepted key counts as sent.

    Once LINE accepted it the friend's receipt (``source``: reminder, booking_notice) is added to
    the session: the caller's commit of its "sent" state writes both, so a retry writes it once.
    Raises QuotaExceeded (nothing sent) or LineError (quota given back).
    """
    reservation = quota.reserve(clinic.id, 1, purpose=purpose)
    try:
        line.client.push(clinic, user_id, messages, retry_key)
    except LineRetryKeyAccepted:
        quota.release(reservation, 1)  # counted by the attempt LINE accepted first
    except LineError:
        quota.release(reservation, 1)
        raise
    friend_id = friend_id or _friend_id_of(user_id)
    if friend_id is not None:
        receipts.record(friend_id, source, messages=messages, ref_id=ref_id)


def _friend_id_of(user_id: str) -> int | None:
    return db.session.scalar(sa.select(Friend.id).where(Friend.line_user_id == user_id).limit(1))


def _actions(booking: Booking) -> dict:
    return {
        "type": "template",
        "altText": "予約の変更・キャンセル",
        "template": {
            "type": "buttons",
            "text": "予約の変更・キャンセルはこちらから",
            "actions": [
                {"type": "postback", "label": "予約を変更する", "data": f"booking:change:{booking.id}"},
                {"type": "postback", "label": "キャンセルする", "data": f"booking:cancel:{booking.id}"},
            ],
        },
    }


def confirmation(clinic, booking: Booking) -> list[dict]:
    text = f"{clinic.name}のご予約が確定しました。\n日時：{when(booking.starts_at)}\nお気をつけてお越しください。"
    return [{"type": "text", "text": text}, _actions(booking)]


def reminder(clinic, booking: Booking) -> list[dict]:
    text = f"【明日のご予約】\n{clinic.name}\n日時：{when(booking.starts_at)}\nご来院をお待ちしております。"
    return [{"type": "text", "text": text}, _actions(booking)]


def changed(clinic, booking: Booking) -> list[dict]:
    text = f"ご予約を変更しました。\n新しい日時：{when(booking.starts_at)}"
    return [{"type": "text", "text": text}, _actions(booking)]


def cancelled(clinic, booking: Booking) -> list[dict]:
    return [{"type": "text", "text": f"{when(booking.starts_at)}のご予約をキャンセルしました。"}]


def closure_notice(clinic, booking: Booking) -> list[dict]:
    text = (
        f"{clinic.name}よりお知らせです。\nご予約の{when(booking.starts_at)}は休診となりました。"
        "大変申し訳ありませんが、別の日時へのご変更をお願いいたします。"
    )
    return [{"type": "text", "text": text}, _actions(booking)]
