"""A clinic ready for native booking: sandbox channel, LINE Login channel, weekly hours."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta

import requests
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler

from saas.booking import services
from saas.booking.models import BookingMode
from saas.extensions import db
from saas.queues import QUEUE_NAMES, get_queue, get_redis
from saas.schedule.models import ScheduleSettings, WeeklyBlock
from saas.schedule.services import clinic_now
from saas.tenancy.scoping import tenant_scope
from tests.webhooks.support import connect_clinic

_seq = itertools.count(1)


def add_login_channel(sandbox, channel_id: str, secret: str, bot_channel_id: str, **extra) -> None:
    """Register a LINE Login channel with the sandbox (control API)."""
    body = {"channelId": channel_id, "channelSecret": secret, "botChannelId": bot_channel_id, **extra}
    answer = requests.post(f"{sandbox.url}/_sandbox/login-channels", json=body, timeout=10)
    answer.raise_for_status()


def booking_clinic(sandbox, live_server, *, capacity: int = 1, name: str = "つなぐ内科") -> tuple:
    """(clinic, bot channel id, login channel id): open 09:00–12:00 every day, 30-minute slots."""
    clinic, channel = connect_clinic(sandbox, live_server, name=name)
    n = next(_seq)
    login_id, login_secret = f"16{n:08d}", f"{n:04d}" + "c" * 28
    add_login_channel(sandbox, login_id, login_secret, channel)
    with tenant_scope(clinic.id):
        db.session.add(ScheduleSettings(clinic_id=clinic.id, closed_on_public_holidays=False))
        for weekday in range(7):
            db.session.add(WeeklyBlock(clinic_id=clinic.id, weekday=weekday, label="午前", start="09:00", end="12:00"))
        settings = services.get_settings(clinic.id)
        settings.mode = BookingMode.NATIVE
        settings.capacity_per_slot = capacity
        settings.login_channel_id, settings.login_channel_secret = login_id, login_secret
        db.session.commit()
    return clinic, channel, login_id


def tomorrow_at(clinic, hour: int = 10, minute: int = 0) -> datetime:
    """Tomorrow (clinic time) at the given clock time."""
    day: date = clinic_now(clinic).date() + timedelta(days=1)
    return datetime.combine(day, time(hour, minute))


def retries_due_now() -> int:
    """Bring every scheduled RQ retry forward to now and move it onto its queue, as RQ's
    scheduler does once the retry interval has passed; the number of jobs moved."""
    moved = 0
    for name in QUEUE_NAMES:
        registry = ScheduledJobRegistry(queue=get_queue(name))
        for job_id in registry.get_job_ids():
            registry.schedule(Job.fetch(job_id, connection=get_redis()), datetime.now(UTC))
            moved += 1
    scheduler = RQScheduler(list(QUEUE_NAMES), connection=get_redis())
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()
    return moved
