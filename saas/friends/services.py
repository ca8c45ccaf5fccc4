"""Friends: keeping the list in step with LINE, tags, and finding friends for the portal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from saas.common import utcnow
from saas.extensions import db
from saas.friends import hooks
from saas.friends.models import Direction, Friend, FriendStatus, FriendTag, Message, MessageMedia, Tag
from saas.webhooks.models import WebhookEvent

TAG_COLORS = ("green", "blue", "orange", "pink", "purple", "gray")
TAG_COLOR_LABELS = {
    "green": _l("緑"),
    "blue": _l("青"),
    "orange": _l("オレンジ"),
    "pink": _l("ピンク"),
    "purple": _l("紫"),
    "gray": _l("グレー"),
}


def get_or_create_friend(line_user_id: str, status: str = FriendStatus.FOLLOWING) -> tuple[Friend, bool]:
    """The clinic's friend for this LINE user (current tenant scope); created (with ``status``) when new.

    Two workers may see the same new user at once: the unique constraint decides, the loser
    reads the winner's row.
    """
    friend = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == line_user_id))
    if friend is not None:
        return friend, False
    try:
        with db.session.begin_nested():
            friend = Friend(line_user_id=line_user_id, status=status, attributes={})
            db.session.add(friend)
        return friend, True
    except IntegrityError:
        return db.session.scalar(sa.select(Friend).where(Friend.line_user_id == line_user_id)), False


def mark_following(friend: Friend, at: datetime) -> None:
    """A follow (new or unblock). An older event than the latest block changes nothing."""
    if friend.blocked_at and friend.blocked_at > at:
        return
    friend.status = FriendStatus.FOLLOWING
    friend.followed_at = at


def mark_blocked(friend: Friend, at: datetime) -> None:
    """An unfollow (the patient blocked the account). Out-of-order older events are ignored."""
    if friend.followed_at and friend.followed_at > at:
        return
    friend.status = FriendStatus.BLOCKED
    friend.blocked_at = at


def apply_profile(friend: Friend, profile) -> None:
    friend.display_name = profile.display_name or friend.display_name
    friend.picture_url = profile.picture_url
    friend.language = profile.language


def keep_reply_token(friend: Friend, token: str | None, expires_at: datetime | None) -> None:
    """Remember the newest reply token, for a free answer from the chat inbox."""
    if token and expires_at and (friend.reply_token_expires_at or datetime.min) <= expires_at:
        friend.reply_token = token
        friend.reply_token_expires_at = expires_at


def record_message(friend: Friend, direction: str, kind: str, text: str = "", **fields) -> Message:
    """Add one message to the friend's conversation."""
    message = Message(friend_id=friend.id, direction=direction, kind=kind, text=text or "", **fields)
    message.payload = fields.get("payload") or {}
    db.session.add(message)
    if direction == Direction.IN:
        friend.last_message_at = message.created_at or utcnow()
    return message


def conversation(
    friend: Friend, limit: int = 200, *, before: int | None = None, after: int | None = None
) -> list[Message]:
    """A keyset page of a friend's messages, oldest first: the newest ``limit`` (before the
    message id ``before``), or the first ``limit`` after the message id ``after``."""
    statement = sa.select(Message).where(Message.friend_id == friend.id)
    if after is not None:
        return list(db.session.scalars(statement.where(Message.id > after).order_by(Message.id).limit(limit)))
    if before is not None:
        statement = statement.where(Message.id < before)
    newest = db.session.scalars(statement.order_by(Message.id.desc()).limit(limit)).all()
    return list(reversed(newest))


@dataclass
class FriendFilter:
    query: str = ""
    status: str = ""
    tag_id: int | None = None
    followed_from: date | None = None
    followed_to: date | None = None


def search_statement(criteria: FriendFilter) -> sa.Select:
    """Friends matching the portal's search form, newest followers first."""
    return _matching(sa.select(Friend), criteria).order_by(Friend.followed_at.desc().nulls_last(), Friend.id.desc())


def _matching(statement: sa.Select, criteria: FriendFilter) -> sa.Select:
    if criteria.query:
        statement = statement.where(Friend.display_name.contains(criteria.query, autoescape=True))
    if criteria.status in tuple(FriendStatus):
        statement = statement.where(Friend.status == criteria.status)
    if criteria.tag_id:
        tagged = sa.select(FriendTag.friend_id).where(FriendTag.tag_id == criteria.tag_id)
        statement = statement.where(Friend.id.in_(tagged))
    if criteria.followed_from:
        statement = statement.where(Friend.followed_at >= datetime.combine(criteria.followed_from, datetime.min.time()))
    if criteria.followed_to:
        end = datetime.combine(criteria.followed_to, datetime.min.time()) + timedelta(days=1)
        statement = statement.where(Friend.followed_at < end)
    return statement


@dataclass(frozen=True)
class FriendCursor:
    """Where a page of the list ends: the last friend's follow time (None sorts last) and id."""

    followed_at: datetime | None
    id: int

    def token(self) -> str:
        return f"{self.followed_at.isoformat() if self.followed_at else ''}~{self.id}"

    @classmethod
    def parse(cls, token: str | None) -> FriendCursor | None:
        moment, _, ident = (token or "").partition("~")
        try:
            return cls(datetime.fromisoformat(moment) if moment else None, int(ident))
        except ValueError:
            return None


@dataclass
class FriendPage:
    friends: list[Friend]
    total: int
    next_cursor: FriendCursor | None


def search_page(criteria: FriendFilter, per_page: int, after: FriendCursor | None = None) -> FriendPage:
    """One keyset page of the list (newest followers first, never-followed last), tags loaded.

    Two index range scans at most, whatever the page: followed friends after the cursor, then
    (when the page is not full) those without a follow time.
    """
    base = _matching(sa.select(Friend), criteria).options(selectinload(Friend.tags))
    found: list[Friend] = []
    if after is None or after.followed_at is not None:
        dated = base.where(Friend.followed_at.is_not(None))
        if after is not None:
            dated = dated.where(sa.tuple_(Friend.followed_at, Friend.id) < (after.followed_at, after.id))
        found = list(
            db.session.scalars(dated.order_by(Friend.followed_at.desc(), Friend.id.desc()).limit(per_page + 1))
        )
    if len(found) <= per_page:
        undated = base.where(Friend.followed_at.is_(None))
        if after is not None and after.followed_at is None:
            undated = undated.where(Friend.id < after.id)
        found += db.session.scalars(undated.order_by(Friend.id.desc()).limit(per_page + 1 - len(found)))
    page, more = found[:per_page], len(found) > per_page
    total = db.session.scalar(_matching(sa.select(sa.func.count()).select_from(Friend), criteria)) or 0
    return FriendPage(page, total, FriendCursor(page[-1].followed_at, page[-1].id) if more else None)


def clinic_tags() -> list[Tag]:
    return list(db.session.scalars(sa.select(Tag).order_by(Tag.name)))


def get_or_create_tag(name: str, color: str = "green") -> Tag:
    """The clinic's tag of this name, created when new."""
    name = name.strip()[:60]
    tag = db.session.scalar(sa.select(Tag).where(Tag.name == name))
    if tag is None:
        tag = Tag(name=name, color=color if color in TAG_COLORS else "green")
        db.session.add(tag)
        db.session.flush()
    return tag


def add_tag(friend: Friend, tag: Tag) -> None:
    """Tag a friend (no-op when already tagged)."""
    exists = db.session.scalar(
        sa.select(FriendTag.id).where(FriendTag.friend_id == friend.id, FriendTag.tag_id == tag.id)
    )
    if exists is None:
        db.session.add(FriendTag(friend_id=friend.id, tag_id=tag.id))
        hooks.note_tags_changed(db.session, friend.clinic_id, [friend.id])
    db.session.flush()
    db.session.expire(friend, ["tags"])
    if exists is None:
        hooks.notify_tag_added(friend, tag)


def remove_tag(friend: Friend, tag_id: int) -> None:
    """Take a tag off a friend (no-op when not tagged)."""
    removed = db.session.execute(
        sa.delete(FriendTag).where(FriendTag.friend_id == friend.id, FriendTag.tag_id == tag_id)
    ).rowcount
    if removed:
        hooks.note_tags_changed(db.session, friend.clinic_id, [friend.id])
    db.session.expire(friend, ["tags"])


def following_counts(clinic_ids: list[int]) -> dict[int, int]:
    """Dashboard figure: friends currently following, per clinic, in one query."""
    from saas.tenancy.scoping import tenant_scope

    with tenant_scope(clinic_ids):
        rows = db.session.execute(
            sa.select(Friend.clinic_id, sa.func.count())  # count(*): read from the (clinic_id, status) index alone
            .where(Friend.status == FriendStatus.FOLLOWING)
            .group_by(Friend.clinic_id)
        )
        return dict(rows.all())


def unsend_message(line_user_id: str, line_message_id: str, at: datetime) -> Message | None:
    """The patient unsent a message: its content is removed, a tombstone (and an audit event) stays."""
    from saas.audit.services import record

    message = db.session.scalar(
        sa.select(Message)
        .join(Friend, Friend.id == Message.friend_id)
        .where(Friend.line_user_id == line_user_id, Message.line_message_id == line_message_id)
        .where(Message.direction == Direction.IN)
    )
    if message is None or message.unsent_at is not None:
        return message
    from saas.inbox.counters import forget_unread

    forget_unread(message)
    message.unsent_at, message.text, message.payload = at, "", {"type": message.kind}
    db.session.execute(sa.delete(MessageMedia).where(MessageMedia.message_id == message.id))
    _scrub_stored_event(message.webhook_event_id)
    details = {"message_id": message.id, "kind": message.kind, "sent_at": message.created_at.isoformat()}
    record(
        "message.unsent",
        clinic_id=message.clinic_id,
        target_type="friend",
        target_id=message.friend_id,
        details=details,
    )
    return message


# What of an unsent message's webhook event stays: enough for redelivery dedupe (the event row
# keeps its webhookEventId) and the audit, none of the patient's words, files or places.
_KEPT_MESSAGE_FIELDS = ("id", "type")


def _scrub_stored_event(webhook_event_id: int | None) -> None:
    """The stored webhook event of an unsent message keeps its ids and type, not its content."""
    event = db.session.get(WebhookEvent, webhook_event_id) if webhook_event_id else None
    content = event.payload.get("message") if event is not None else None
    if isinstance(content, dict):
        kept = {key: content[key] for key in _KEPT_MESSAGE_FIELDS if key in content}
        event.payload = {**event.payload, "message": kept}  # a new dict: the JSON column sees the change
