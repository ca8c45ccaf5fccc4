"""Helpers for send-pipeline tests: clinics on the sandbox, friends in bulk, in-process workers."""

from __future__ import annotations

import secrets
import time

import sqlalchemy as sa
from rq import SimpleWorker
from rq.registry import ScheduledJobRegistry
from rq.scheduler import RQScheduler

from saas.extensions import db
from saas.friends.models import Friend, FriendStatus
from saas.queues import QUEUE_NAMES, all_queues, get_queue, get_redis
from saas.quota.plans import set_clinic_plan
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_clinic

HELLO = [{"type": "text", "text": "明日は休診です"}]


def connected_clinic(sandbox, channel_id: str, plan: str = "standard", **fields):
    """A clinic whose LINE channel lives in the sandbox."""
    token = f"token-{channel_id}-" + secrets.token_hex(12)
    sandbox.add_channel(channel_id, "s" * 32, token, plan="standard")
    clinic = gen_clinic(line_channel_id=channel_id, line_channel_secret="s" * 32, line_access_token=token, **fields)
    with tenant_scope(clinic.id):
        set_clinic_plan(clinic.id, plan, extra_allowed=plan == "standard")
    return clinic


def new_user_id() -> str:
    return "U" + secrets.token_hex(16)


def add_friends(sandbox, clinic, count: int, *, register: bool = True, **fields) -> list[str]:
    """``count`` following friends inserted in bulk (and known to the sandbox); their LINE ids."""
    user_ids = [new_user_id() for _ in range(count)]
    rows = [
        {
            "clinic_id": clinic.id,
            "line_user_id": user_id,
            "display_name": f"患者{i}",
            "status": fields.get("status", FriendStatus.FOLLOWING),
            "consent_marketing": fields.get("consent_marketing", True),
            "consent_booking": True,
            "attributes": fields.get("attributes", {}),
            "inflow_source_id": fields.get("inflow_source_id"),
            "followed_at": fields.get("followed_at"),
        }
        for i, user_id in enumerate(user_ids)
    ]
    with tenant_scope(clinic.id):
        for start in range(0, len(rows), 5000):
            db.session.execute(sa.insert(Friend), rows[start : start + 5000])
        db.session.commit()
    if register:
        for start in range(0, len(user_ids), 20000):
            sandbox.add_patients(clinic.line_channel_id, user_ids[start : start + 20000])
    return user_ids


def run_scheduler_once() -> None:
    """What ``rq worker --with-scheduler`` does each second: move due jobs onto their queues."""
    scheduler = RQScheduler(list(QUEUE_NAMES), connection=get_redis())
    scheduler.acquire_locks()
    scheduler.enqueue_scheduled_jobs()
    scheduler.release_locks()


def scheduled_count() -> int:
    return sum(ScheduledJobRegistry(queue=get_queue(name)).count for name in QUEUE_NAMES)


def drain(timeout: float = 120.0) -> None:
    """Run in-process burst workers and the scheduler until no job is queued or scheduled."""
    deadline = time.monotonic() + timeout
    while True:
        run_scheduler_once()
        SimpleWorker(all_queues(), connection=get_redis()).work(burst=True)
        if not scheduled_count() and not any(q.count for q in all_queues()):
            return
        if time.monotonic() > deadline:
            raise AssertionError("jobs still pending after the timeout")
        time.sleep(0.1)
