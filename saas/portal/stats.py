"""Charts for the clinic dashboard: friends and messages per day, in clinic (Japan) time.

Every query runs through the ORM under the caller's tenant scope; days are grouped in SQL.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from saas.common import JAPAN, utcnow
from saas.delivery.models import Delivery, DeliveryStatus
from saas.extensions import db
from saas.friends.models import Direction, Friend, FriendStatus
from saas.portal import dashboard
from saas.portal.models import MessageDay
from saas.tenancy.scoping import tenant_scope

CLINIC_ZONE = JAPAN
CHART_DAYS = 30


def _offset(now: datetime) -> timedelta:
    return now.replace(tzinfo=UTC).astimezone(CLINIC_ZONE).utcoffset() or timedelta(0)


def _local_day(column, offset: timedelta):
    """SQL expression: the clinic-local calendar day of a naive UTC timestamp column."""
    if db.engine.dialect.name == "sqlite":
        return sa.func.date(column, f"{int(offset.total_seconds() // 60):+d} minutes")
    return sa.cast(column + offset, sa.Date)


def _as_date(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _days(now: datetime, days: int) -> tuple[list[date], datetime]:
    """The last ``days`` local days (today included) and the UTC moment the first one starts."""
    offset = _offset(now)
    today = (now + offset).date()
    first = today - timedelta(days=days - 1)
    return [first + timedelta(days=n) for n in range(days)], datetime.combine(first, datetime.min.time()) - offset


def _per_day(column, since: datetime, offset: timedelta, *criteria) -> dict[date, int]:
    day = _local_day(column, offset)
    rows = db.session.execute(sa.select(day, sa.func.count()).where(column >= since, *criteria).group_by(day)).all()
    return {_as_date(d): n for d, n in rows}


def friend_chart(*, now: datetime | None = None, days: int = CHART_DAYS) -> dict:
    """Daily new follows and blocks for the scoped clinic, plus today's totals."""
    now = now or utcnow()
    offset = _offset(now)
    labels, since = _days(now, days)
    follows = _per_day(Friend.followed_at, since, offset)
    blocks = _per_day(Friend.blocked_at, since, offset)
    totals = dict(db.session.execute(sa.select(Friend.status, sa.func.count()).group_by(Friend.status)).all())
    following = totals.get(FriendStatus.FOLLOWING.value, 0)
    blocked = totals.get(FriendStatus.BLOCKED.value, 0)
    seen = following + blocked
    return {
        "labels": [d.strftime("%m/%d") for d in labels],
        "follows": [follows.get(d, 0) for d in labels],
        "blocks": [blocks.get(d, 0) for d in labels],
        "following": following,
        "blocked": blocked,
        "block_rate": round(blocked * 100 / seen, 1) if seen else 0.0,
    }


def message_chart(*, now: datetime | None = None, days: int = CHART_DAYS) -> dict:
    """Daily messages received from and sent to friends for the scoped clinic (from the daily roll-up)."""
    now = now or utcnow()
    labels, _since = _days(now, days)
    rows = db.session.execute(
        sa.select(MessageDay.day, MessageDay.direction, MessageDay.total).where(MessageDay.day >= labels[0])
    ).all()  # at most two rows a day: see saas.portal.models
    received = {_as_date(d): n for d, direction, n in rows if direction == Direction.IN}
    sent = {_as_date(d): n for d, direction, n in rows if direction == Direction.OUT}
    return {
        "labels": [d.strftime("%m/%d") for d in labels],
        "received": [received.get(d, 0) for d in labels],
        "sent": [sent.get(d, 0) for d in labels],
        "received_total": sum(received.get(d, 0) for d in labels),
        "sent_total": sum(sent.get(d, 0) for d in labels),
    }


def latest_deliveries(limit: int = 5) -> list[Delivery]:
    """The scoped clinic's newest deliveries (drafts left out)."""
    query = sa.select(Delivery).where(Delivery.status != DeliveryStatus.DRAFT).order_by(Delivery.id.desc())
    return list(db.session.scalars(query.limit(limit)))


def new_friends_this_month(clinic_ids: list[int], *, now: datetime | None = None) -> dict[int, int]:
    """Dashboard figure: friends who followed since the 1st of this month (Japan time), in one query."""
    now = now or utcnow()
    offset = _offset(now)
    first = (now + offset).date().replace(day=1)
    since = datetime.combine(first, datetime.min.time()) - offset
    with tenant_scope(clinic_ids):
        rows = db.session.execute(
            sa.select(Friend.clinic_id, sa.func.count()).where(Friend.followed_at >= since).group_by(Friend.clinic_id)
        )
        return dict(rows.all())


dashboard.register("friends_new_this_month", _l("今月の新しい友だち"), new_friends_this_month)
