"""Builders for analytics tests: raw events at Japan times, and the jobs run by a real RQ worker."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime, time, timedelta

from rq import SimpleWorker

from saas.booking.models import Booking, Slot
from saas.common import utcnow
from saas.extensions import db
from saas.friends.models import Friend, FriendStatus
from saas.queues import all_queues, get_queue, get_redis
from saas.tenancy.scoping import tenant_scope

JST = timedelta(hours=9)


def japan_today() -> date:
    return (utcnow() + JST).date()


def japan_time(days_ago: int, hour: int = 10, minute: int = 0) -> datetime:
    """Naive UTC of a Japan wall-clock time ``days_ago`` days before today."""
    day = japan_today() - timedelta(days=days_ago)
    return datetime.combine(day, time(hour, minute)) - JST


def add_friends(clinic_id: int, *rows: dict) -> list[int]:
    with tenant_scope(clinic_id):
        friends = [
            Friend(line_user_id=f"U{clinic_id:04d}{n:028d}{len(rows)}", attributes={}, **row)
            for n, row in enumerate(rows)
        ]
        db.session.add_all(friends)
        db.session.commit()
        return [friend.id for friend in friends]


def block(clinic_id: int, friend_id: int, at: datetime) -> None:
    with tenant_scope(clinic_id):
        friend = db.session.get(Friend, friend_id)
        friend.status, friend.blocked_at = FriendStatus.BLOCKED, at
        db.session.commit()


def add_booking(clinic_id: int, friend_id: int | None, at: datetime) -> int:
    """A confirmed booking made at ``at`` (the slot itself is next week)."""
    with tenant_scope(clinic_id):
        starts = datetime.combine(japan_today() + timedelta(days=7), time(10, 0))
        slot = Slot(clinic_id=clinic_id, starts_at=starts, ends_at=starts + timedelta(minutes=30), booked_count=1)
        db.session.add(slot)
        db.session.flush()
        booking = Booking(
            clinic_id=clinic_id,
            slot_id=slot.id,
            starts_at=starts,
            ends_at=slot.ends_at,
            friend_id=friend_id,
            line_user_id=f"U{friend_id or 0:032d}",
            created_at=at,
        )
        db.session.add(booking)
        db.session.commit()
        return booking.id


def run_jobs() -> None:
    """What the queues hold plus the minutely roll-up cron queues, in a real RQ worker (in-process burst)."""
    from saas.analytics.jobs import roll_up_dirty_days

    SimpleWorker(all_queues(), connection=get_redis()).work(burst=True)
    get_queue("bulk").enqueue(roll_up_dirty_days)
    SimpleWorker(all_queues(), connection=get_redis()).work(burst=True)


def chart(html: str, name: str) -> dict:
    """A chart's labels and series as the page hands them to Chart.js."""
    tag = re.search(rf'<canvas id="{name}-chart"[^>]*>', html).group(0)
    labels = json.loads(re.search(r"data-labels='([^']*)'", tag).group(1))
    spec = json.loads(re.search(r"data-chart='([^']*)'", tag).group(1).replace("&#39;", "'"))
    return {"labels": labels, **{s["label"]: s["data"] for s in spec["series"]}}


def csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))


def total(html: str, name: str) -> str:
    return re.search(rf'data-total="{name}">([^<]*)<', html).group(1)
