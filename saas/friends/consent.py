"""Friends' consent to receive messages: marketing (お知らせ・キャンペーン) and reminders.

Marketing starts off: a new friend is asked in the greeting (quick reply) and may change the
answer at any time in LINE (the postbacks below, e.g. from a rich menu area with data
``consent:status``); staff may change it with a reason. Every change is kept as a
:class:`ConsentChange` row and in the audit log.

Which sends honour which consent, in one place (:func:`allows`):

- marketing: broadcasts, segment deliveries, 1:1 pushes from the composer;
- reminders: the day-before booking reminder and recall rules (N months after a visit);
- none: urgent notices (休診・代診・災害) and a booking's own confirmation/change/cancel notices,
  which are operational answers to something the patient did or must know.
"""

from __future__ import annotations

import sqlalchemy as sa

from saas.audit.services import record
from saas.extensions import db
from saas.friends.hooks import register_postback_handler
from saas.friends.models import ConsentChange, Friend

MARKETING, REMINDERS = "marketing", "reminders"
KINDS = (MARKETING, REMINDERS)
_COLUMNS = {MARKETING: "consent_marketing", REMINDERS: "consent_booking"}
URGENT_DELIVERY = "urgent"
POSTBACK_PREFIX = "consent:"


class ConsentRefused(ValueError):
    """A consent change that cannot be made (unknown kind, staff change without a reason)."""


def allows(kind: str | None):
    """SQL condition on :class:`Friend`: the friend accepts messages needing this consent.

    ``None`` (urgent and booking notices) needs none and matches everyone.
    """
    if kind is None:
        return sa.true()
    return getattr(Friend, _COLUMNS[kind]).is_(True)


def for_delivery(delivery_kind: str):
    """The recipient condition of a delivery: urgent notices go to everyone, the rest need marketing."""
    return allows(None if delivery_kind == URGENT_DELIVERY else MARKETING)


def granted(friend: Friend | None, kind: str) -> bool:
    """Whether this friend (loaded) has given this consent."""
    return friend is not None and bool(getattr(friend, _COLUMNS[kind]))


def reminders_allowed_for(friend_id: int | None, line_user_id: str) -> bool:
    """Booking reminders: the friend (by id, else by LINE user id) accepts reminders.

    A booking without any friend row (should not happen) gets its reminder: it answers the
    patient's own booking.
    """
    condition = Friend.id == friend_id if friend_id else Friend.line_user_id == line_user_id
    value = db.session.scalar(sa.select(Friend.consent_booking).where(condition))
    return value is None or bool(value)


def has_answered(friend: Friend, kind: str = MARKETING) -> bool:
    """Whether the friend's consent of this kind was ever set by anyone."""
    found = sa.select(ConsentChange.id).where(ConsentChange.friend_id == friend.id, ConsentChange.kind == kind)
    return db.session.scalar(found.limit(1)) is not None


def history(friend: Friend, limit: int = 20) -> list[ConsentChange]:
    """The friend's consent changes, newest first."""
    query = sa.select(ConsentChange).where(ConsentChange.friend_id == friend.id)
    return list(db.session.scalars(query.order_by(ConsentChange.id.desc()).limit(limit)))


def change(friend: Friend, kind: str, value: bool, *, by: str, reason: str = "", staff=None) -> ConsentChange:
    """Set one consent of a friend, keep the change and audit it (the caller commits).

    Staff must give a reason; the patient's own choice needs none.
    """
    if kind not in KINDS:
        raise ConsentRefused(f"unknown consent {kind!r}")
    reason = (reason or "").strip()[:500]
    if by == "staff" and not reason:
        raise ConsentRefused("a staff change needs a reason")
    setattr(friend, _COLUMNS[kind], bool(value))
    row = ConsentChange(
        clinic_id=friend.clinic_id,
        friend_id=friend.id,
        kind=kind,
        granted=bool(value),
        changed_by=by,
        staff_user_id=getattr(staff, "id", None),
        reason=reason,
    )
    db.session.add(row)
    record(
        "friend.consent_changed",
        clinic_id=friend.clinic_id,
        target_type="friend",
        target_id=friend.id,
        details={"kind": kind, "granted": bool(value), "by": by, "reason": reason},
        actor=staff,
    )
    return row


# --- in LINE: the greeting's question and the patient's own changes -----------------------

QUESTION = (
    "健康情報やキャンペーンなどのお知らせをLINEでお送りしてもよろしいですか？\n"
    "（休診などの大切なお知らせは、この設定にかかわらずお送りします。"
    "「配信設定」からいつでも変更できます）"
)
_LABELS = {
    MARKETING: ("お知らせを受け取る", "受け取らない"),
    REMINDERS: ("リマインダーを受け取る", "リマインダー不要"),
}
_NAMES = {MARKETING: "お知らせ（健康情報・キャンペーン）", REMINDERS: "予約・再来院のリマインダー"}


def _postback_item(label: str, data: str) -> dict:
    return {"type": "action", "action": {"type": "postback", "label": label, "data": data, "displayText": label}}


def quick_reply(kinds: tuple[str, ...] = (MARKETING,)) -> dict:
    """Quick-reply buttons to say yes or no to each consent kind."""
    items = []
    for kind in kinds:
        yes, no = _LABELS[kind]
        items += [_postback_item(yes, f"consent:{kind}:yes"), _postback_item(no, f"consent:{kind}:no")]
    return {"items": items}


def with_question(friend: Friend, answer: list[dict] | None) -> list[dict]:
    """The greeting, plus the marketing question for a friend who never answered it.

    The question rides on the clinic's greeting (挨拶メッセージ): a clinic without one sends
    nothing on a follow, and collects consent through ``consent:status`` or staff instead.
    """
    messages = list(answer or [])
    if not messages or has_answered(friend):
        return messages
    question = {"type": "text", "text": QUESTION, "quickReply": quick_reply()}
    if len(messages) < 5:
        return messages + [question]
    return messages[:4] + [question]


def status_text(friend: Friend) -> str:
    lines = ["現在の配信設定です。"]
    for kind in KINDS:
        lines.append(f"・{_NAMES[kind]}：{'受け取る' if granted(friend, kind) else '受け取らない'}")
    return "\n".join(lines)


def _status_answer(friend: Friend) -> list[dict]:
    return [{"type": "text", "text": status_text(friend), "quickReply": quick_reply(KINDS)}]


@register_postback_handler(POSTBACK_PREFIX)
def answer_consent_postback(clinic, friend: Friend, event) -> list[dict] | None:
    """``consent:status`` shows the settings; ``consent:<kind>:yes|no`` changes one."""
    data = str((event.get("postback") or {}).get("data") or "")
    parts = data.split(":")
    if len(parts) == 3 and parts[1] in KINDS and parts[2] in ("yes", "no"):
        kind, value = parts[1], parts[2] == "yes"
        if granted(friend, kind) != value or not has_answered(friend, kind):
            change(friend, kind, value, by="patient")
        done = "受け取る" if value else "受け取らない"
        text = f"{_NAMES[kind]}を「{done}」に設定しました。\n「配信設定」からいつでも変更できます。"
        return [{"type": "text", "text": text}]
    return _status_answer(friend)
