"""A send of a few thousand friends through real worker and cron processes, with faults injected.

Each test asserts what a clinic would check afterwards: every friend got the message exactly
once, the page's counts equal what LINE (the sandbox) delivered, the quota used equals what
was delivered, and the delivery finished by itself (bounded waits on conditions, no timing).
"""

from __future__ import annotations

import sqlite3
import threading

import pytest
import sqlalchemy as sa

from saas.delivery.models import FINAL_STATUSES, Delivery, DeliveryStatus
from saas.extensions import db
from saas.queues import get_redis
from saas.quota import counter
from saas.quota.usage import usage
from saas.tenancy.scoping import tenant_scope
from tests.delivery.support import add_friends, connected_clinic
from tests.delivery.test_pipeline import send
from tests.faults.processes import OutageProxy, wait_for

FRIENDS = 3_000
FINISH_BOUND = 300  # seconds: far above the minute a send needs to resume, far below a hung suite
UNDER_WAY_BOUND = 300  # worker processes start slowly on a loaded machine


@pytest.fixture
def sandbox_state(sandbox_server):
    return sandbox_server.app.extensions["line_sandbox"]


def delivered(sandbox_state, channel_id: str, user_ids) -> list[int]:
    patients = sandbox_state.channels[channel_id].patients
    return [len(patients[user_id].inbox) for user_id in user_ids]


def multicasts(sandbox, channel_id: str) -> int:
    return sum(1 for r in sandbox.requests(channel_id) if r["operation"] == "multicast")


def final(clinic_id: int, delivery_id: int) -> Delivery | None:
    """The delivery once it has ended; None while it runs (or while the test's own database is out)."""
    db.session.expire_all()
    with tenant_scope(clinic_id):
        try:
            delivery = db.session.get(Delivery, delivery_id)
        except sa.exc.OperationalError:
            delivery = None
        db.session.rollback()
        return delivery if delivery and delivery.status in FINAL_STATUSES else None


def assert_exactly_once_and_counts_true(clinic, delivery_id, sandbox_state, channel_id, friends) -> None:
    clinic_id = sa.inspect(clinic).identity[0]  # no query: the database may be out right now
    delivery = wait_for(lambda: final(clinic_id, delivery_id), FINISH_BOUND, "the delivery to finish by itself")
    counts = delivered(sandbox_state, channel_id, friends)
    assert set(counts) == {1}, "every friend exactly once"
    assert delivery.status == DeliveryStatus.DONE
    assert (delivery.targeted, delivery.sent, delivery.failed) == (FRIENDS, sum(counts), 0)
    with tenant_scope(clinic_id):
        assert usage(clinic_id).used == FRIENDS
    live = get_redis().get(counter._redis_key(clinic_id, counter.month_key(counter.japan_now())))
    assert live is None or int(live) == FRIENDS  # absent after a Redis restart: seeded from the database


def start_send(sandbox, channel_id: str, latency_ms: int = 150):
    clinic = connected_clinic(sandbox, channel_id)
    friends = add_friends(sandbox, clinic, FRIENDS)
    sandbox.configure(channel_id, latency_ms=latency_ms)
    return clinic, friends, send(clinic, kind="broadcast")


def test_a_worker_killed_mid_send_is_replaced_and_nobody_is_missed_or_doubled(sandbox, sandbox_state, workers):
    workers(cron=True)
    doomed = workers(mode="fork")
    clinic, friends, delivery_id = start_send(sandbox, "1790000001")
    wait_for(lambda: multicasts(sandbox, "1790000001") >= 2, UNDER_WAY_BOUND, "the send to be under way")
    doomed.kill()  # SIGKILL, most likely inside a multicast call
    workers(mode="simple")  # the supervisor starts another
    assert_exactly_once_and_counts_true(clinic, delivery_id, sandbox_state, "1790000001", friends)


def test_a_redis_restart_mid_send_loses_the_queues_but_not_the_send(sandbox, sandbox_state, workers, private_redis):
    workers(cron=True)
    survivor = workers(mode="simple")
    clinic, friends, delivery_id = start_send(sandbox, "1790000002")
    wait_for(lambda: multicasts(sandbox, "1790000002") >= 2, UNDER_WAY_BOUND, "the send to be under way")
    private_redis.restart()  # every queued chunk job is gone
    assert_exactly_once_and_counts_true(clinic, delivery_id, sandbox_state, "1790000002", friends)
    assert survivor.alive


def test_a_database_outage_mid_send_is_ridden_out(app, sandbox, sandbox_state, workers, worker_env):
    uri = sa.engine.make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if uri.get_backend_name() == "postgresql":
        proxy = OutageProxy(uri.host or "127.0.0.1", uri.port or 5432)
        env = {
            "DATABASE_URL": uri.set(drivername="postgresql", host="127.0.0.1", port=proxy.port).render_as_string(False)
        }
        blank = proxy.blank
    else:
        proxy, env, blank = None, {}, _lock_sqlite(uri.database)
    try:
        workers(cron=True, env=env)
        workers(mode="simple", env=env)
        clinic, friends, delivery_id = start_send(sandbox, "1790000003")
        wait_for(lambda: multicasts(sandbox, "1790000003") >= 2, UNDER_WAY_BOUND, "the send to be under way")
        blank(6)
        assert_exactly_once_and_counts_true(clinic, delivery_id, sandbox_state, "1790000003", friends)
    finally:
        if proxy:
            proxy.stop()


def _lock_sqlite(path: str):
    """SQLite has no server to cut off: hold an exclusive lock, so every other connection fails."""

    def blank(seconds: float) -> None:
        holder = sqlite3.connect(path, timeout=30, check_same_thread=False)
        holder.execute("BEGIN EXCLUSIVE")
        timer = threading.Timer(seconds, lambda: (holder.rollback(), holder.close()))
        timer.start()

    return blank


def test_a_storm_of_429_and_5xx_is_retried_through(sandbox, sandbox_state, workers):
    workers(cron=True)
    workers(mode="simple")
    clinic = connected_clinic(sandbox, "1790000004")
    friends = add_friends(sandbox, clinic, FRIENDS)
    sandbox.configure("1790000004", fail_next=[429, 500, 503, 429, 502] * 6, latency_ms=20)
    delivery_id = send(clinic, kind="broadcast")
    assert_exactly_once_and_counts_true(clinic, delivery_id, sandbox_state, "1790000004", friends)
    statuses = [r["status"] for r in sandbox.requests("1790000004") if r["operation"] == "multicast"]
    assert statuses.count(200) == FRIENDS // 500 and len(statuses) >= 30 + FRIENDS // 500
