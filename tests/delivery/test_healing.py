"""Planning in a job, the sweeper, honest outcomes, 失敗分を再送, and the quota through crashes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from rq import SimpleWorker

from saas.common import utcnow
from saas.delivery import healing, planner, resend, services
from saas.delivery.jobs import send_pending_chunks
from saas.delivery.models import Delivery, DeliveryChunk, DeliveryRecipient, DeliveryStatus
from saas.extensions import db
from saas.queues import all_queues, get_queue, get_redis
from saas.quota import counter
from saas.quota.usage import usage
from saas.schedule.models import Closure
from saas.schedule.services import request_urgent_notice
from saas.tenancy.scoping import tenant_scope
from tests.delivery.support import add_friends, connected_clinic, drain
from tests.delivery.test_pipeline import received, reload, send
from tests.factories import gen_user
from tests.faults.processes import free_port
from tests.helpers import login


def used(clinic) -> int:
    with tenant_scope(clinic.id):
        return usage(clinic.id).used


def redis_used(clinic) -> int:
    month = counter.month_key(counter.japan_now())
    return int(get_redis().get(counter._redis_key(clinic.id, month)) or 0)


def test_submitting_only_records_the_delivery_and_planning_runs_in_a_job(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1730000001")
    friends = add_friends(sandbox, clinic, 1_200)
    delivery_id = send(clinic, kind="broadcast")
    delivery = reload(clinic, delivery_id)
    assert delivery.status == DeliveryStatus.SCHEDULED and delivery.reservation is None
    assert used(clinic) == 0  # nothing reserved in the request
    drain()
    delivery = reload(clinic, delivery_id)
    assert (delivery.status, delivery.sent, delivery.planned) == (DeliveryStatus.DONE, 1_200, 1_200)
    assert set(received(sandbox_state, "1730000001", friends).values()) == {1}
    assert used(clinic) == 1_200 == redis_used(clinic)


@pytest.fixture
def settings(app):
    """Change app settings for one test."""
    saved: dict = {}

    def change(**values):
        for key in values:
            saved.setdefault(key, app.config.get(key))
        app.config.update(values)

    yield change
    for key, value in saved.items():
        if value is None:
            app.config.pop(key, None)
        else:
            app.config[key] = value


def test_a_plan_interrupted_after_its_first_batch_is_resumed_by_the_sweeper(settings, sandbox, sandbox_state):
    settings(DELIVERY_PLAN_BATCH=1_000, DELIVERY_STALE_SECONDS=0)
    clinic = connected_clinic(sandbox, "1730000002")
    friends = add_friends(sandbox, clinic, 3_000)
    with tenant_scope(clinic.id):  # what a worker killed after one batch leaves behind
        delivery = services.create_delivery(messages=[{"type": "text", "text": "x"}])
        delivery.status = DeliveryStatus.SCHEDULED
        db.session.commit()
        assert planner._claim(delivery.id) and planner._reserve(delivery)
        assert len(planner._plan_batch(delivery)) == 2
        delivery_id = delivery.id
    assert reload(clinic, delivery_id).planned == 1_000

    with tenant_scope(clinic.id):
        assert healing.heal()["planning"] == 1
    drain()

    delivery = reload(clinic, delivery_id)
    assert (delivery.status, delivery.targeted, delivery.sent) == (DeliveryStatus.DONE, 3_000, 3_000)
    assert set(received(sandbox_state, "1730000002", friends).values()) == {1}
    assert used(clinic) == 3_000 == redis_used(clinic)


def test_the_sweeper_takes_back_a_chunk_whose_worker_died_and_line_409_counts_as_sent(app, sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1730000003")
    friends = add_friends(sandbox, clinic, 700)
    delivery_id = send(clinic, kind="broadcast")
    drain()
    with tenant_scope(clinic.id):  # the first chunk's worker died after LINE accepted, before recording it
        db.session.execute(
            sa.update(DeliveryChunk)
            .where(DeliveryChunk.delivery_id == delivery_id, DeliveryChunk.seq == 0)
            .values(status="sending", sent=0, updated_at=utcnow() - timedelta(minutes=5))
        )
        db.session.execute(sa.update(DeliveryRecipient).values(status="pending"))
        db.session.execute(
            sa.update(Delivery).where(Delivery.id == delivery_id).values(status="sending", finished_at=None)
        )
        db.session.commit()
    get_redis().flushdb()  # and Redis restarted empty

    with tenant_scope(clinic.id):
        assert healing.heal()["chunks"] == 1
    drain()

    delivery = reload(clinic, delivery_id)
    assert (delivery.status, delivery.sent) == (DeliveryStatus.DONE, 700)
    assert set(received(sandbox_state, "1730000003", friends).values()) == {1}
    statuses = [r["status"] for r in sandbox.requests("1730000003") if r["operation"] == "multicast"]
    assert sorted(statuses) == [200, 200, 409]


def test_pending_chunks_whose_jobs_redis_lost_are_enqueued_again(settings, sandbox, sandbox_state):
    settings(DELIVERY_STALE_SECONDS=0)
    clinic = connected_clinic(sandbox, "1730000004")
    friends = add_friends(sandbox, clinic, 1_500)
    delivery_id = send(clinic, kind="broadcast")
    SimpleWorker([get_queue("default")], connection=get_redis()).work(burst=True, max_jobs=1)  # planned
    get_queue("bulk").empty()  # the chunk jobs vanish with a Redis restart
    with tenant_scope(clinic.id):
        assert healing.heal()["chunks"] == 3
        assert healing.heal()["chunks"] == 0  # queued now: not enqueued twice
    drain()
    assert reload(clinic, delivery_id).sent == 1_500
    assert set(received(sandbox_state, "1730000004", friends).values()) == {1}


def test_chunks_a_dying_worker_took_but_never_started_are_enqueued_again(settings, sandbox, sandbox_state):
    """RQ moves a job it dequeues to the queue's intermediate list and marks it started a moment
    later; a worker killed in between leaves it there, still "queued", for RQ to fail minutes on."""
    settings(DELIVERY_STALE_SECONDS=0)
    clinic = connected_clinic(sandbox, "1730000013")
    friends = add_friends(sandbox, clinic, 1_500)
    delivery_id = send(clinic, kind="broadcast")
    SimpleWorker([get_queue("default")], connection=get_redis()).work(burst=True, max_jobs=1)  # planned
    bulk = get_queue("bulk")
    taken = bulk.job_ids[:2]
    for _ in taken:
        get_redis().lmove(bulk.key, bulk.intermediate_queue_key, "LEFT", "RIGHT")
    assert bulk.count == 1 and all(bulk.fetch_job(job_id).get_status() == "queued" for job_id in taken)

    with tenant_scope(clinic.id):
        assert healing.heal()["chunks"] == 2
        assert healing.heal()["chunks"] == 0  # in the queue now: not enqueued twice
    assert bulk.intermediate_queue.get_job_ids() == []
    drain()
    assert reload(clinic, delivery_id).sent == 1_500
    assert set(received(sandbox_state, "1730000013", friends).values()) == {1}


def test_chunks_waiting_in_a_dead_schedulers_schedule_are_enqueued_once_overdue(settings, sandbox, sandbox_state):
    """RQ's scheduler runs inside one worker; when that worker is killed, deferred chunks wait
    for a scheduler that is not there (a replacement takes it over only at its maintenance)."""
    settings(DELIVERY_STALE_SECONDS=30)
    clinic = connected_clinic(sandbox, "1730000005")
    friends = add_friends(sandbox, clinic, 1_000)
    delivery_id = send(clinic, kind="broadcast")
    SimpleWorker([get_queue("default")], connection=get_redis()).work(burst=True, max_jobs=1)  # planned
    bulk = get_queue("bulk")
    deferred = bulk.job_ids
    bulk.empty()
    from saas.delivery.jobs import send_chunk

    for job_id in deferred:  # deferred by the rate limiter a minute ago; nobody moved them since
        chunk_id, _ = (int(part) for part in job_id.removeprefix("delivery-chunk-").split("-"))
        bulk.enqueue_at(datetime.now(UTC) - timedelta(seconds=60), send_chunk, chunk_id, clinic.id, job_id=job_id)
    with tenant_scope(clinic.id):
        db.session.execute(sa.update(DeliveryChunk).values(updated_at=utcnow() - timedelta(seconds=90)))
        db.session.commit()
        assert healing.heal()["chunks"] == 2
        assert healing.heal()["chunks"] == 0  # queued now, and out of the schedule
    assert bulk.scheduled_job_registry.count == 0
    SimpleWorker(all_queues(), connection=get_redis()).work(burst=True)  # no scheduler run
    assert reload(clinic, delivery_id).sent == 1_000
    assert set(received(sandbox_state, "1730000005", friends).values()) == {1}


def test_a_chunk_deferred_for_later_is_left_to_the_scheduler(settings, sandbox):
    settings(DELIVERY_STALE_SECONDS=30)
    clinic = connected_clinic(sandbox, "1730000006")
    add_friends(sandbox, clinic, 600)
    send(clinic, kind="broadcast")
    SimpleWorker([get_queue("default")], connection=get_redis()).work(burst=True, max_jobs=1)
    bulk = get_queue("bulk")
    deferred = bulk.job_ids
    bulk.empty()
    from saas.delivery.jobs import send_chunk

    for job_id in deferred:  # a rate-limit deferral due in ten seconds
        chunk_id, _ = (int(part) for part in job_id.removeprefix("delivery-chunk-").split("-"))
        bulk.enqueue_at(datetime.now(UTC) + timedelta(seconds=10), send_chunk, chunk_id, clinic.id, job_id=job_id)
    with tenant_scope(clinic.id):
        db.session.execute(sa.update(DeliveryChunk).values(updated_at=utcnow() - timedelta(seconds=90)))
        db.session.commit()
        assert healing.heal()["chunks"] == 0
    assert bulk.scheduled_job_registry.count == 2


def test_a_long_line_incident_fails_the_chunks_after_the_retry_window_and_never_says_done(
    settings, sandbox, sandbox_state
):
    settings(DELIVERY_RETRY_WINDOW_SECONDS=0.3)
    clinic = connected_clinic(sandbox, "1730000005")
    friends = add_friends(sandbox, clinic, 600)
    sandbox.configure("1730000005", fail_next=[500] * 400)
    delivery_id = send(clinic, kind="broadcast")
    drain()
    delivery = reload(clinic, delivery_id)
    assert (delivery.status, delivery.sent, delivery.failed) == (DeliveryStatus.FAILED, 0, 600)
    assert "時間再試行しても送信できませんでした" in _chunk_errors(clinic, delivery_id)
    assert not any(received(sandbox_state, "1730000005", friends).values())
    assert used(clinic) == 0 == redis_used(clinic)


def _chunk_errors(clinic, delivery_id: int) -> str:
    with tenant_scope(clinic.id):
        rows = db.session.scalars(sa.select(DeliveryChunk.last_error).where(DeliveryChunk.delivery_id == delivery_id))
        return " ".join(rows)


@pytest.fixture
def one_attempt(settings):
    settings(DELIVERY_MAX_ATTEMPTS=1)


def test_a_partly_failed_send_alerts_the_sender_and_resends_only_the_failed_with_the_same_keys(
    client, sandbox, sandbox_state, one_attempt
):
    clinic = connected_clinic(sandbox, "1730000006")
    friends = add_friends(sandbox, clinic, 1_500)
    sandbox.configure("1730000006", fail_next=[500])  # the first chunk's only attempt fails
    delivery_id = send(clinic, kind="broadcast")
    drain()
    delivery = reload(clinic, delivery_id)
    assert (delivery.status, delivery.sent, delivery.failed) == (DeliveryStatus.PARTLY_FAILED, 1_000, 500)

    login(client, gen_user("sender", clinic=clinic))
    history = client.get(f"/c/{clinic.slug}/deliveries").get_data(as_text=True)
    assert "送信できなかった配信があります" in history and "一部失敗" in history and "完了" not in history
    detail = client.get(f"/c/{clinic.slug}/deliveries/{delivery_id}").get_data(as_text=True)
    assert "失敗分を再送" in detail
    token = _csrf(detail)
    answer = client.post(f"/c/{clinic.slug}/deliveries/{delivery_id}/resend", data={"csrf_token": token})
    again = client.post(f"/c/{clinic.slug}/deliveries/{delivery_id}/resend", data={"csrf_token": token})
    drain()

    assert answer.status_code == 302 and again.status_code == 302
    assert set(received(sandbox_state, "1730000006", friends).values()) == {1}
    with tenant_scope(clinic.id):
        resent = db.session.scalars(sa.select(Delivery).where(Delivery.resend_of_id == delivery_id)).one()
    assert (resent.status, resent.targeted, resent.sent) == (DeliveryStatus.DONE, 500, 500)
    keys = [r["retry_key"] for r in sandbox.requests("1730000006") if r["operation"] == "multicast"]
    assert keys.count(keys[0]) == 2, "the failed chunk was sent again under its own retry key"
    assert used(clinic) == 1_500 == redis_used(clinic)
    history = client.get(f"/c/{clinic.slug}/deliveries").get_data(as_text=True)
    assert "送信できなかった配信があります" not in history
    resent_page = client.get(f"/c/{clinic.slug}/deliveries/{resent.id}").get_data(as_text=True)
    assert "失敗分の再送" in history and "失敗分の再送" in resent_page and "全員配信" not in resent_page


def _csrf(page: str) -> str:
    import re

    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def test_a_send_trimmed_to_nobody_says_so(sandbox):
    clinic = connected_clinic(sandbox, "1730000007", plan="free")
    add_friends(sandbox, clinic, 200)
    send(clinic, kind="broadcast")
    drain()
    delivery_id = send(clinic, kind="broadcast", allow_trim=True)
    drain()
    delivery = reload(clinic, delivery_id)
    assert delivery.status == DeliveryStatus.REFUSED and "誰にも送信していません" in delivery.stop_reason
    assert delivery.skipped == {"over_quota": 200}


def test_a_grant_whose_reservation_never_committed_is_given_back(sandbox):
    clinic = connected_clinic(sandbox, "1730000008")
    with tenant_scope(clinic.id):
        with counter.reserving(clinic.id, 40, purpose="kept"):
            pass
        crashed = counter.reserving(clinic.id, 500, purpose="crashed")
        crashed.__enter__()  # the process dies here: Redis granted, the row never committed
        db.session.rollback()
        assert redis_used(clinic) == 540
        assert counter.give_back_orphaned_grants(older_than_seconds=-1) == 500
        assert counter.give_back_orphaned_grants(older_than_seconds=-1) == 0
    assert redis_used(clinic) == 40 == used(clinic)


def test_pressing_send_while_redis_is_down_explains_and_creates_nothing(app, client, sandbox):
    clinic = connected_clinic(sandbox, "1730000009")
    add_friends(sandbox, clinic, 3)
    login(client, gen_user("sender", clinic=clinic))
    token = _csrf(client.get(f"/c/{clinic.slug}/deliveries/new").get_data(as_text=True))
    saved = app.config["REDIS_URL"], app.extensions.pop("tsunagu_redis", None)
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    try:
        answer = client.post(
            f"/c/{clinic.slug}/deliveries", data={"csrf_token": token, "audience": "all", "text": "明日"}
        )
    finally:
        app.extensions.pop("tsunagu_redis", None)
        app.config["REDIS_URL"] = saved[0]
        if saved[1] is not None:
            app.extensions["tsunagu_redis"] = saved[1]
    assert answer.status_code == 503
    assert "配信は作成されていません" in answer.get_data(as_text=True)
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(Delivery.id))) == 0


def test_the_page_shows_planning_progress(client, sandbox):
    clinic = connected_clinic(sandbox, "1730000010")
    with tenant_scope(clinic.id):
        delivery = services.create_delivery(messages=[{"type": "text", "text": "x"}])
        delivery.status, delivery.targeted, delivery.planned = DeliveryStatus.PLANNING, 20_000, 5_000
        db.session.commit()
        delivery_id = delivery.id
    login(client, gen_user("sender", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/deliveries/{delivery_id}/progress").get_data(as_text=True)
    assert "準備中" in page and "5,000 / 20,000" in page


def test_an_urgent_notice_reaches_every_friend_in_one_job(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1730000011")
    friends = add_friends(sandbox, clinic, 1_100, consent_marketing=False)
    with tenant_scope(clinic.id):
        closure = Closure(starts_on=date(2026, 12, 1), ends_on=date(2026, 12, 1), reason="臨時休診")
        db.session.add(closure)
        db.session.flush()
        request_urgent_notice(clinic.id, closure.id)
        db.session.commit()
    assert get_queue("urgent").count == 1
    SimpleWorker([get_queue("urgent")], connection=get_redis()).work(burst=True, max_jobs=1)
    assert set(received(sandbox_state, "1730000011", friends).values()) == {1}
    assert not any(q.count for q in (get_queue("urgent"), get_queue("bulk"), get_queue("default")))


def test_send_pending_chunks_is_safe_to_run_twice(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1730000012")
    friends = add_friends(sandbox, clinic, 600)
    delivery_id = send(clinic, kind="broadcast")
    drain()
    with tenant_scope(clinic.id):
        assert send_pending_chunks(delivery_id) == 0
        assert resend.failed_count(delivery_id) == 0
    assert set(received(sandbox_state, "1730000012", friends).values()) == {1}
