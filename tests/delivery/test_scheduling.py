"""Scheduled sends, urgent notices ahead of bulk sends, quota under concurrency, isolation, cron."""

from __future__ import annotations

import threading
import time
from datetime import date, timedelta

import sqlalchemy as sa
from rq import SimpleWorker

from saas.common import utcnow
from saas.delivery import services
from saas.delivery.jobs import pick_up_urgent_notices, start_delivery, start_due_deliveries
from saas.delivery.models import Delivery, DeliveryChunk, DeliveryRecipient, DeliveryStatus
from saas.extensions import db
from saas.queues import all_queues, get_queue, get_redis
from saas.quota.usage import usage
from saas.schedule.models import Closure, UrgentNoticeRequest
from saas.schedule.services import request_urgent_notice
from saas.tenancy.scoping import tenant_scope
from tests.delivery.support import HELLO, add_friends, connected_clinic, drain, run_scheduler_once
from tests.delivery.test_pipeline import received, reload, send
from tests.helpers import assert_rows_isolated


def test_a_scheduled_send_fires_at_its_time_once_even_when_the_worker_restarts(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1710000001")
    friends = add_friends(sandbox, clinic, 20)
    at = utcnow() + timedelta(seconds=2)
    delivery_id = send(clinic, kind="broadcast", scheduled_at=at)

    run_scheduler_once()  # a worker with its scheduler, before the time: nothing to do
    SimpleWorker(all_queues(), connection=get_redis()).work(burst=True)
    assert reload(clinic, delivery_id).status == DeliveryStatus.SCHEDULED
    assert sum(received(sandbox_state, "1710000001", friends).values()) == 0

    time.sleep(2.2)  # the worker "restarts"; the cron safety net and a duplicate job both fire too
    get_queue("default").enqueue(start_due_deliveries)
    get_queue("bulk").enqueue(start_delivery, delivery_id, clinic.id)
    drain()

    assert set(received(sandbox_state, "1710000001", friends).values()) == {1}
    multicasts = [r for r in sandbox.requests("1710000001") if r["operation"] == "multicast"]
    assert len(multicasts) == 1
    delivery = reload(clinic, delivery_id)
    assert delivery.status == DeliveryStatus.DONE and delivery.started_at >= at


def test_an_urgent_notice_behind_another_clinics_bulk_send_is_delivered_first(sandbox, sandbox_state):
    busy = connected_clinic(sandbox, "1710000002")
    add_friends(sandbox, busy, 5_000)
    send(busy, kind="broadcast")  # 10 chunks waiting on the bulk queue
    closing = connected_clinic(sandbox, "1710000003")
    patients = add_friends(sandbox, closing, 50)
    with tenant_scope(closing.id):
        closure = Closure(starts_on=date(2026, 12, 1), ends_on=date(2026, 12, 1), reason="院長学会出張")
        db.session.add(closure)
        db.session.flush()
        request_urgent_notice(closing.id, closure.id)
        db.session.commit()
    get_queue("default").enqueue(pick_up_urgent_notices)  # the cron safety net too: still one notice
    drain()

    urgent = [r["at"] for r in sandbox.requests("1710000003") if r["operation"] == "multicast"]
    bulk = [r["at"] for r in sandbox.requests("1710000002") if r["operation"] == "multicast"]
    assert len(urgent) == 1 and len(bulk) == 10
    assert urgent[0] <= min(bulk)
    assert set(received(sandbox_state, "1710000003", patients).values()) == {1}
    inbox = sandbox.inbox("1710000003", patients[0])
    assert "休診" in inbox[0]["message"]["text"] or "12月1日" in inbox[0]["message"]["text"]
    with tenant_scope(closing.id):
        assert db.session.scalar(sa.select(UrgentNoticeRequest.status)) == "sent"
        assert db.session.scalars(sa.select(Delivery.kind)).all() == ["urgent"]


def test_two_concurrent_sends_that_together_exceed_the_quota_leave_the_clinic_within_it(app, sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1710000004", plan="free")  # 200 messages a month
    friends = add_friends(sandbox, clinic, 150)
    ids = []
    with tenant_scope(clinic.id):
        for _ in range(2):
            delivery = services.create_delivery(messages=HELLO, kind="broadcast")
            delivery.status = DeliveryStatus.SCHEDULED
            ids.append(delivery.id)
        db.session.commit()

    clinic_id = clinic.id  # read here: the test's session must not be touched from the threads

    def start(delivery_id: int) -> None:
        with app.app_context(), tenant_scope(clinic_id):
            services.start(delivery_id)

    threads = [threading.Thread(target=start, args=(i,)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    drain()

    statuses = sorted(reload(clinic, i).status for i in ids)
    assert statuses == ["done", "refused"]
    refused = next(reload(clinic, i) for i in ids if reload(clinic, i).status == "refused")
    assert "必要 150通" in refused.stop_reason and "残り 50通" in refused.stop_reason
    assert sum(received(sandbox_state, "1710000004", friends).values()) == 150
    with tenant_scope(clinic.id):
        assert usage(clinic.id).used == 150 <= 200


def test_unused_quota_is_given_back_for_skipped_chunks(sandbox):
    clinic = connected_clinic(sandbox, "1710000005", plan="free")
    add_friends(sandbox, clinic, 120)
    add_friends(sandbox, clinic, 30, register=False)  # LINE does not know them: counted as sent by LINE's rules
    sandbox.configure("1710000005", fail_next=[400])
    delivery_id = send(clinic, kind="broadcast")
    drain()
    delivery = reload(clinic, delivery_id)
    assert delivery.failed == 150 and delivery.sent == 0 and "400" in _chunk_error(clinic, delivery_id)
    with tenant_scope(clinic.id):
        assert usage(clinic.id).used == 0


def _chunk_error(clinic, delivery_id: int) -> str:
    with tenant_scope(clinic.id):
        return db.session.scalar(sa.select(DeliveryChunk.last_error).where(DeliveryChunk.delivery_id == delivery_id))


def test_delivery_rows_are_isolated_between_clinics(sandbox, as_platform):
    clinics = []
    for n, channel in enumerate(("1710000006", "1710000007")):
        clinic = connected_clinic(sandbox, channel)
        add_friends(sandbox, clinic, 3 + n)
        send(clinic, kind="broadcast")
        send(clinic, kind="broadcast", messages=[{"type": "text", "text": "{{friend.display_name}}さん"}])  # pushes
        clinics.append(clinic.id)
    drain()
    for model in (Delivery, DeliveryChunk, DeliveryRecipient):
        row_a, row_b = (db.session.scalars(sa.select(model).where(model.clinic_id == c)).first() for c in clinics)
        assert_rows_isolated(model, row_a, row_b)


def test_the_cron_configuration_loads_and_registers_the_periodic_jobs():
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=get_redis(), name="test-cron")
    scheduler.load_config_from_file("saas.cron")
    names = {job.func_name.rsplit(".", 1)[-1] for job in scheduler.get_jobs()}
    assert {
        "pick_up_urgent_notices",
        "start_due_deliveries",
        "heal_deliveries",
        "reconcile_quotas",
        "purge_audit_events",
    } <= names
