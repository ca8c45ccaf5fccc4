"""Who a delivery reaches: segment filters over friends, and the counts of who is skipped and why.

A segment is plain data (stored on the delivery), e.g.::

    {"tag_ids": [3, 5], "tag_match": "any", "exclude_tag_ids": [7],
     "attributes": {"age_band": "30代"}, "inflow_source_ids": [2],
     "fields": [{"field_id": 4, "op": "on_or_after", "value": "2025-04-01"}],
     "followed_from": "2025-04-01", "followed_to": "2025-06-30",
     "messaged_within_days": 90, "silent_for_days": 180,
     "visited_within_days": 30, "not_visited_for_days": 180, "answered_form_ids": [1]}

Dates are Japan dates. Blocked friends are never sent to; friends without marketing consent
are skipped except for urgent notices (休診・代診・災害 are operational, not advertising).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import NamedTuple

import sqlalchemy as sa

from saas.common import days_before, parse_id, parse_ids, to_utc, utcnow
from saas.extensions import db
from saas.fields.services import segment_filters as field_filters
from saas.forms.segments import segment_filters as form_filters
from saas.friends import attribute_rows, consent
from saas.friends.models import Friend, FriendAttribute, FriendStatus, FriendTag
from saas.visits.services import segment_filters as visit_filters


class Candidate(NamedTuple):
    """The few fields of a friend the pipeline needs (cheap to load by the hundred thousand)."""

    id: int
    line_user_id: str
    display_name: str


@dataclass(frozen=True)
class AudienceCounts:
    matched: int
    eligible: int
    blocked: int
    no_consent: int

    @property
    def skipped(self) -> dict[str, int]:
        return {k: v for k, v in (("blocked", self.blocked), ("no_consent", self.no_consent)) if v}


def jst_day_start(text) -> datetime | None:
    """The start of a Japan date (``2025-04-01``) in UTC; None when the text is not such a date."""
    try:
        return to_utc(datetime.combine(date.fromisoformat(text), time.min))
    except (TypeError, ValueError, OverflowError):
        return None


def _tag_filters(segment: dict) -> list:
    filters = []
    tag_ids = parse_ids(segment.get("tag_ids"))
    if tag_ids and segment.get("tag_match") == "all":
        for tag_id in tag_ids:
            filters.append(Friend.id.in_(sa.select(FriendTag.friend_id).where(FriendTag.tag_id == tag_id)))
    elif tag_ids:
        filters.append(Friend.id.in_(sa.select(FriendTag.friend_id).where(FriendTag.tag_id.in_(tag_ids))))
    excluded = parse_ids(segment.get("exclude_tag_ids"))
    if excluded:
        filters.append(Friend.id.not_in(sa.select(FriendTag.friend_id).where(FriendTag.tag_id.in_(excluded))))
    return filters


def _followed_filters(segment: dict) -> list:
    """友だち追加日 from / to; a date that cannot be read matches nobody (never everybody)."""
    filters = []
    if segment.get("followed_from"):
        start = jst_day_start(segment["followed_from"])
        filters.append(Friend.followed_at >= start if start else sa.false())
    if segment.get("followed_to"):
        end = jst_day_start(segment["followed_to"])
        filters.append(Friend.followed_at < end + timedelta(days=1) if end else sa.false())
    return filters


def _time_filters(segment: dict, now: datetime) -> list:
    filters = _followed_filters(segment)
    within = segment.get("messaged_within_days")
    if within not in (None, ""):
        filters.append(Friend.last_message_at >= days_before(now, within))
    silent = segment.get("silent_for_days")
    if silent not in (None, ""):
        cutoff = days_before(now, silent)
        filters.append(sa.or_(Friend.last_message_at.is_(None), Friend.last_message_at < cutoff))
    return filters


def attribute_filter(key: str, value: str):
    """An attribute equal to a text: the friend's typed attribute rows (an index-only lookup)."""
    if len(value) > attribute_rows.MAX_VALUE:  # never kept as a row: compare the JSON itself
        return Friend.attributes[key].as_string() == value
    return Friend.id.in_(
        sa.select(FriendAttribute.friend_id).where(FriendAttribute.key == key, FriendAttribute.value == value)
    )


def segment_filters(segment: dict, *, now: datetime | None = None) -> list:
    """SQL conditions on Friend for a segment (an empty segment matches every friend)."""
    segment = segment or {}
    filters = _tag_filters(segment) + _time_filters(segment, now or utcnow())
    for key, value in (segment.get("attributes") or {}).items():
        if key and value not in (None, ""):
            filters.append(attribute_filter(str(key), str(value)))
    sources = parse_ids(segment.get("inflow_source_ids"))
    if sources:
        filters.append(Friend.inflow_source_id.in_(sources))
    return filters + field_filters(segment.get("fields")) + visit_filters(segment) + form_filters(segment)


def _base(kind: str, segment: dict, friend_id: int | None) -> list:
    if kind == "push":
        return [Friend.id == (parse_id(friend_id or 0) or 0)]
    if kind == "step":  # a fixed set of friends (step delivery), never "everybody"
        return [Friend.id.in_(parse_ids(segment.get("friend_ids")) or [0])]
    return segment_filters(segment) if kind == "segment" else []


def _consent(kind: str, segment: dict):
    """Step deliveries name the consent they need (reminder-like scenarios need reminders)."""
    if kind == "step" and segment.get("consent") in consent.KINDS:
        return consent.allows(segment["consent"])
    return consent.for_delivery(kind)


def _custom_plan() -> None:
    """Plan this transaction's statements for their values (Postgres).

    psycopg prepares a statement run five times on a connection, and Postgres may then reuse a
    generic plan that ignores the values: for a segment (which clinic, which tags, how selective)
    that plan was measured at 3.8 s where the values' own plan takes 10 ms.
    """
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.text("SET LOCAL plan_cache_mode = force_custom_plan"))


def count_audience(kind: str, segment: dict | None = None, friend_id: int | None = None) -> AudienceCounts:
    """How many friends the audience matches, will receive, and are skipped (by reason)."""
    _custom_plan()
    following = Friend.status == FriendStatus.FOLLOWING
    consenting = _consent(kind, segment or {})
    row = db.session.execute(
        sa.select(
            sa.func.count(Friend.id),
            sa.func.count(Friend.id).filter(following, consenting),
            sa.func.count(Friend.id).filter(sa.not_(following)),
            sa.func.count(Friend.id).filter(following, sa.not_(consenting)),
        ).where(*_base(kind, segment or {}, friend_id))
    ).one()
    return AudienceCounts(*(int(v or 0) for v in row))


def audience_filters(kind: str, segment: dict | None = None, friend_id: int | None = None) -> list:
    """The audience's conditions on Friend besides following: the segment, the one friend, consent."""
    return [*_base(kind, segment or {}, friend_id), _consent(kind, segment or {})]


def eligible_friends(kind: str, segment: dict | None = None, friend_id: int | None = None) -> list[Candidate]:
    """The friends to send to, in id order; each friend once."""
    conditions = [*audience_filters(kind, segment, friend_id), Friend.status == FriendStatus.FOLLOWING]
    _custom_plan()
    rows = db.session.execute(
        sa.select(Friend.id, Friend.line_user_id, Friend.display_name).where(*conditions).order_by(Friend.id)
    ).all()
    return [Candidate(*row) for row in rows]
