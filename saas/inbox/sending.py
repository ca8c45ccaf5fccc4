"""Staff replies from the inbox: the free reply token while it is valid, otherwise a push.

The composer shows the way (:func:`delivery_plan`) before sending, and the send refuses to
switch silently from a free reply to a billable push: the page is shown again instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import gettext as _

from saas import line
from saas.audit.services import record
from saas.common import utcnow
from saas.extensions import db
from saas.friends import services as friends
from saas.friends.models import Direction, Friend
from saas.inbox import services
from saas.inbox.models import ChatSend, ConversationStatus, Via
from saas.line.errors import LineError, LineRetryKeyAccepted
from saas.links import services as links
from saas.messaging.limits import utf16_length
from saas.quota import counter
from saas.quota.usage import usage
from saas.receipts import services as receipts
from saas.receipts.models import ReceiptSource

log = logging.getLogger(__name__)
PUSH_ATTEMPTS = 3
MAX_TEXT = 5000  # LINE's limit for one text message, in UTF-16 code units


@dataclass(frozen=True)
class DeliveryPlan:
    """How the next message to this friend would go, for the composer."""

    via: str
    reply_token_expires_at: object = None
    remaining: int | None = None  # messages left this month (None: no limit of ours)
    limit: int | None = None


class SendRefused(Exception):
    """Nothing was sent; the message says why (shown to staff)."""


def delivery_plan(clinic, friend: Friend) -> DeliveryPlan:
    """Reply (free) while the friend's newest reply token is unused and unexpired, else push."""
    if friend.usable_reply_token:
        return DeliveryPlan(Via.REPLY, reply_token_expires_at=friend.reply_token_expires_at)
    current = usage(clinic.id)
    return DeliveryPlan(Via.PUSH, remaining=current.remaining, limit=current.limit)


def _claim_reply_token(friend: Friend) -> str | None:
    """Take the reply token for this send (atomic: two responders cannot both use it)."""
    token = friend.usable_reply_token
    if token is None:
        return None
    taken = db.session.execute(
        sa.update(Friend)
        .where(Friend.id == friend.id, Friend.reply_token == token)
        .values(reply_token=None, reply_token_expires_at=None),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    db.session.refresh(friend)
    return token if taken.rowcount == 1 else None


def _push_with_retries(clinic, friend: Friend, messages: list[dict], retry_key: str):
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        try:
            return line.client.push(clinic, friend.line_user_id, messages, retry_key)
        except LineRetryKeyAccepted as exc:  # an earlier attempt got through
            return line.client.Sent(request_id=exc.accepted_request_id)
        except LineError as exc:
            if not exc.retryable or attempt == PUSH_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")


def send_text(clinic, friend: Friend, text: str, sender, *, expected_via: str = "") -> ChatSend:
    """Send ``text`` to the friend as ``sender`` and keep it in the conversation.

    Raises :class:`SendRefused` when nothing was sent (empty text, quota, LINE refused, or a
    push would be needed though the composer promised a free reply).
    """
    text = (text or "").strip()
    if not text:
        raise SendRefused(_("メッセージを入力してください。"))
    if utf16_length(text) > MAX_TEXT:
        raise SendRefused(_("メッセージは%(n)s文字以内にしてください。", n=f"{MAX_TEXT:,}"))
    messages = links.track_for_friend(friend.clinic_id, friend, [{"type": "text", "text": text}])
    token = _claim_reply_token(friend)
    if token is None and expected_via == Via.REPLY:
        raise SendRefused(
            _(
                "返信トークンの有効期限が切れたため、無料の応答では送れません。"
                "もう一度送信するとプッシュ（今月の送信数にカウント）で送ります。"
            )
        )
    send = ChatSend(friend_id=friend.id, sender_user_id=sender.id, via=Via.REPLY if token else Via.PUSH)
    send.created_at = utcnow()
    db.session.add(send)
    sent = _send_reply(clinic, friend, send, token, messages) if token else _send_push(clinic, friend, send, messages)
    _keep_in_conversation(friend, send, messages, sent)
    return send


def _send_reply(clinic, friend: Friend, send: ChatSend, token: str, messages: list[dict]):
    try:
        return line.client.reply(clinic, token, messages)
    except LineError as exc:
        _fail(send, exc)
        raise SendRefused(
            _("LINEが応答を受け付けませんでした（返信トークンが使えません）。もう一度送信するとプッシュで送ります。")
        ) from exc


def _send_push(clinic, friend: Friend, send: ChatSend, messages: list[dict]):
    try:
        # LINE bills a push once per recipient, however many message objects it carries.
        reservation = counter.reserve(clinic.id, 1, purpose=f"chat:friend:{friend.id}")
    except counter.QuotaExceeded as exc:
        db.session.rollback()
        raise SendRefused(
            _("今月の送信可能数が残っていないため、プッシュで送れません（%(reason)s）。", reason=exc)
        ) from exc
    send.retry_key, send.reservation_id = str(uuid.uuid4()), reservation.id
    db.session.add(send)
    db.session.commit()  # the retry key is kept before LINE sees it
    try:
        return _push_with_retries(clinic, friend, messages, send.retry_key)
    except LineError as exc:
        counter.release(reservation, reservation.granted)
        _fail(send, exc)
        raise SendRefused(
            _("送信できませんでした（LINE: %(message)s）。時間をおいてもう一度お試しください。", message=exc.message)
        ) from exc


def _fail(send: ChatSend, exc: LineError) -> None:
    log.warning("inbox send failed via %s: %s", send.via, exc)
    send.state, send.error = "failed", str(exc)[:1000]
    db.session.add(send)
    record("message.send.failed", target_type="friend", target_id=send.friend_id, details={"via": send.via})
    db.session.commit()


def sent_content(messages: list[dict], message_id: int | None, line_message_ids: list) -> dict:
    """What was sent, for the audit log: the stored message (which holds the text and is erased
    with the patient), LINE's ids, the message types, length and a SHA-256 of exactly what went
    to LINE — the text itself stays out of the append-only log, which erasure cannot reach."""
    exact = json.dumps(messages, ensure_ascii=False, sort_keys=True).encode()
    return {
        "message_id": message_id,
        "line_message_ids": [i for i in line_message_ids if i],
        "messages": len(messages),
        "types": [m.get("type", "") for m in messages],
        "characters": sum(len(m.get("text", "")) for m in messages),
        "sha256": hashlib.sha256(exact).hexdigest(),
    }


def _keep_in_conversation(friend: Friend, send: ChatSend, messages: list[dict], sent) -> None:
    ids = list(getattr(sent, "message_ids", None) or []) + [None]
    stored = friends.record_message(
        friend, Direction.OUT, "text", messages[0]["text"], payload=messages[0], line_message_id=ids[0]
    )
    db.session.flush()
    send.message_id, send.state = stored.id, "sent"
    receipts.record(friend.id, ReceiptSource.STAFF, message_id=stored.id)
    services.hand_to_staff(friend)
    conversation = services.ensure_conversation(friend)
    if conversation.assignee_user_id is None:
        conversation.assignee_user_id = send.sender_user_id
    conversation.status, conversation.status_changed_at = ConversationStatus.WAITING, utcnow()
    services.mark_read(friend)
    details = {"via": send.via, "retry_key": send.retry_key, **sent_content(messages, stored.id, ids[:-1])}
    record("message.send", target_type="friend", target_id=friend.id, details=details)
    db.session.commit()
