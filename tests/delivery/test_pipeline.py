"""The send pipeline end to end through the sandbox over real HTTP, with in-process workers."""

from __future__ import annotations

import sqlalchemy as sa
from rq import SimpleWorker

from saas.delivery import services
from saas.delivery.models import Delivery, DeliveryChunk, DeliveryRecipient, DeliveryStatus
from saas.extensions import db
from saas.friends.models import Friend, FriendStatus
from saas.privacy import services as privacy
from saas.queues import get_queue, get_redis
from saas.tenancy.scoping import tenant_scope
from tests.delivery.support import HELLO, add_friends, connected_clinic, drain


def received(sandbox_state, channel_id: str, user_ids) -> dict[str, int]:
    patients = sandbox_state.channels[channel_id].patients
    return {user_id: len(patients[user_id].inbox) for user_id in user_ids}


def send(clinic, **fields) -> int:
    with tenant_scope(clinic.id):
        delivery = services.create_delivery(messages=fields.pop("messages", HELLO), **fields)
        services.submit(delivery)
        return delivery.id


def reload(clinic, delivery_id: int) -> Delivery:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        delivery = db.session.get(Delivery, delivery_id)
        db.session.refresh(delivery)
        return delivery


def test_a_10000_friend_segment_send_reaches_each_targeted_friend_exactly_once(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1700000001")
    targeted = add_friends(sandbox, clinic, 10_000, attributes={"interest": "子育て"})
    others = add_friends(sandbox, clinic, 300, attributes={"interest": "美容"})
    blocked = add_friends(sandbox, clinic, 40, attributes={"interest": "子育て"}, status=FriendStatus.BLOCKED)
    no_consent = add_friends(sandbox, clinic, 60, attributes={"interest": "子育て"}, consent_marketing=False)

    delivery_id = send(clinic, kind="segment", segment={"attributes": {"interest": "子育て"}})
    drain()

    counts = received(sandbox_state, "1700000001", targeted + others + blocked + no_consent)
    assert {counts[u] for u in targeted} == {1}
    assert not any(counts[u] for u in others + blocked + no_consent)
    delivery = reload(clinic, delivery_id)
    assert delivery.status == DeliveryStatus.DONE
    assert (delivery.targeted, delivery.sent, delivery.failed) == (10_000, 10_000, 0)
    assert delivery.skipped == {"blocked": 40, "no_consent": 60}
    with tenant_scope(clinic.id):
        sizes = db.session.scalars(sa.select(DeliveryChunk.size).where(DeliveryChunk.delivery_id == delivery_id)).all()
    assert len(sizes) == 20 and max(sizes) <= 500
    with tenant_scope(clinic.id):
        recipient_rows = db.session.scalar(sa.select(sa.func.count()).select_from(DeliveryRecipient))
    assert recipient_rows == 0, "a multicast's recipients and outcome live in its 20 chunk rows, not 10,000 rows"


def test_a_friend_erased_between_planning_and_sending_is_left_out_and_counted(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1700000009")
    friends = add_friends(sandbox, clinic, 12)
    delivery_id = send(clinic, kind="broadcast")
    SimpleWorker([get_queue("default")], connection=get_redis()).work(burst=True)  # planned, nothing sent yet
    with tenant_scope(clinic.id):
        erased = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == friends[3]))
        privacy.erase(erased)
        db.session.commit()
    drain()

    counts = received(sandbox_state, "1700000009", friends)
    assert counts[friends[3]] == 0 and {counts[u] for u in friends if u != friends[3]} == {1}
    delivery = reload(clinic, delivery_id)
    assert delivery.status == DeliveryStatus.DONE
    assert (delivery.sent, delivery.skipped) == (11, {"erased": 1})


def test_a_worker_that_died_after_line_accepted_a_chunk_is_retried_without_a_duplicate(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1700000002")
    friends = add_friends(sandbox, clinic, 30)
    delivery_id = send(clinic, kind="broadcast")
    drain()
    with tenant_scope(clinic.id):  # as if the worker died before recording LINE's answer
        db.session.execute(
            sa.update(DeliveryChunk)
            .where(DeliveryChunk.delivery_id == delivery_id)
            .values(status="pending", sent=0, request_id=None)
        )
        db.session.execute(sa.update(Delivery).where(Delivery.id == delivery_id).values(status="sending"))
        db.session.commit()
        chunk_id = db.session.scalar(sa.select(DeliveryChunk.id).where(DeliveryChunk.delivery_id == delivery_id))
    from saas.delivery.jobs import send_chunk
    from saas.queues import get_queue

    get_queue("bulk").enqueue(send_chunk, chunk_id, clinic.id)
    drain()

    assert set(received(sandbox_state, "1700000002", friends).values()) == {1}
    statuses = [r["status"] for r in sandbox.requests("1700000002") if r["operation"] == "multicast"]
    assert statuses == [200, 409]
    with tenant_scope(clinic.id):
        chunk = db.session.get(DeliveryChunk, chunk_id)
        assert chunk.status == "sent" and chunk.sent == 30


def test_a_burst_of_429s_and_server_errors_ends_with_everything_delivered_once(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1700000003")
    friends = add_friends(sandbox, clinic, 1_200)
    sandbox.configure("1700000003", fail_next=[429, 429, 500, 429, 503, 429])
    delivery_id = send(clinic, kind="broadcast")
    drain()

    assert set(received(sandbox_state, "1700000003", friends).values()) == {1}
    calls = [r for r in sandbox.requests("1700000003") if r["operation"] == "multicast"]
    by_key: dict[str, list[int]] = {}
    for call in calls:
        by_key.setdefault(call["retry_key"], []).append(call["status"])
    assert len(by_key) == 3 and all(statuses[-1] == 200 for statuses in by_key.values())
    assert sum(len(s) for s in by_key.values()) == 3 + 6
    delivery = reload(clinic, delivery_id)
    assert (delivery.status, delivery.sent, delivery.failed) == ("done", 1_200, 0)


def test_the_monthly_limit_429_stops_the_send_and_skips_the_rest(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1700000004")
    friends = add_friends(sandbox, clinic, 1_500)
    sandbox.configure("1700000004", monthly_limit=700)
    delivery_id = send(clinic, kind="broadcast")
    drain()

    delivery = reload(clinic, delivery_id)
    assert delivery.status == DeliveryStatus.STOPPED and "月間メッセージ上限" in delivery.stop_reason
    assert delivery.sent == 500 and delivery.skipped == {"monthly_limit": 1_000}
    assert sum(received(sandbox_state, "1700000004", friends).values()) == 500
    statuses = [r["status"] for r in sandbox.requests("1700000004") if r["operation"] == "multicast"]
    assert statuses == [200, 429], "no retry after the monthly limit"


def test_cancelling_skips_the_chunks_not_yet_sent(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1700000005")
    friends = add_friends(sandbox, clinic, 2_000)
    delivery_id = send(clinic, kind="broadcast")
    from rq import SimpleWorker

    from saas.queues import get_queue, get_redis

    SimpleWorker([get_queue("default")], connection=get_redis()).work(burst=True, max_jobs=1)  # the plan
    SimpleWorker([get_queue("bulk")], connection=get_redis()).work(burst=True, max_jobs=1)  # one chunk
    with tenant_scope(clinic.id):
        assert services.cancel(db.session.get(Delivery, delivery_id))
    drain()

    delivery = reload(clinic, delivery_id)
    assert delivery.status == DeliveryStatus.CANCELLED
    assert (delivery.sent, delivery.skipped) == (500, {"cancelled": 1_500})
    assert sum(received(sandbox_state, "1700000005", friends).values()) == 500


def test_personalised_messages_are_multicast_when_identical_and_pushed_otherwise(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1700000006")
    same = add_friends(sandbox, clinic, 5)  # every one named like the others? no: names differ
    with tenant_scope(clinic.id):
        db.session.execute(sa.update(Friend).values(display_name="佐藤"))
        db.session.commit()
    unique = add_friends(sandbox, clinic, 3)
    template = [{"type": "text", "text": "{{friend.display_name}}様、{{clinic.name}}です。"}]
    delivery_id = send(clinic, kind="broadcast", messages=template)
    drain()

    ops = [r["operation"] for r in sandbox.requests("1700000006") if r["status"] == 200]
    assert sorted(ops) == ["multicast"] + ["pushMessage"] * 3
    inbox = sandbox.inbox("1700000006", unique[0])
    assert inbox[0]["message"]["text"].startswith("患者0様、") and clinic.name in inbox[0]["message"]["text"]
    assert sandbox.inbox("1700000006", same[0])[0]["message"]["text"].startswith("佐藤様")
    assert reload(clinic, delivery_id).sent == 8
