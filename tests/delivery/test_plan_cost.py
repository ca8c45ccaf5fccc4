"""What planning a broadcast costs in statements: a few per batch, none per friend or per chunk.

A plan of 100,000 friends must take well under 2 s on Postgres (issue 18); every statement and
commit is a round trip, so the bound is on statements, not on time.
"""

from __future__ import annotations

import sqlalchemy as sa

from saas.delivery import planner, services
from saas.delivery.models import Delivery, DeliveryChunk, DeliveryStatus
from saas.extensions import db
from saas.friends.models import Friend
from saas.tenancy.scoping import tenant_scope
from tests.delivery.support import add_friends, connected_clinic
from tests.webhooks.test_handling_cost import StatementLog

STATEMENTS_PER_PLAN = 30  # claim, billing and quota checks, reservation, audit; then ~5 per batch


def _planned_delivery(clinic) -> int:
    with tenant_scope(clinic.id):
        delivery = services.create_delivery(messages=[{"type": "text", "text": "{{clinic.name}}からのお知らせ"}])
        delivery.status = DeliveryStatus.SCHEDULED
        db.session.commit()
        return delivery.id


def test_a_broadcast_is_planned_in_a_few_statements_with_every_friend_once_in_order(sandbox):
    clinic = connected_clinic(sandbox, "1740000001")
    add_friends(sandbox, clinic, 2_300, register=False)
    delivery_id = _planned_delivery(clinic)

    with StatementLog(db.engine) as log, tenant_scope(clinic.id):
        chunk_ids = planner.plan(delivery_id)

    chunk_inserts = sum("INSERT INTO delivery_chunk" in s for s in log.statements)
    # Postgres: one INSERT … SELECT per batch; SQLite (the embedded default): the ORM's insert per chunk
    assert chunk_inserts == (1 if db.engine.dialect.name == "postgresql" else 5)
    assert len(log.statements) - chunk_inserts <= STATEMENTS_PER_PLAN, "\n".join(log.statements)
    with tenant_scope(clinic.id):
        chunks = db.session.scalars(sa.select(DeliveryChunk).order_by(DeliveryChunk.seq)).all()
        friend_ids = db.session.scalars(sa.select(Friend.id).order_by(Friend.id)).all()
    assert sorted(chunk_ids) == [chunk.id for chunk in chunks]
    assert [chunk.seq for chunk in chunks] == [0, 1, 2, 3, 4] and [c.size for c in chunks] == [500] * 4 + [300]
    assert [i for chunk in chunks for i in chunk.friend_ids] == friend_ids
    assert [chunk.last_friend_id for chunk in chunks] == [chunk.friend_ids[-1] for chunk in chunks]
    assert len({chunk.retry_key for chunk in chunks}) == 5 and all(len(c.retry_key) == 36 for c in chunks)
    assert {chunk.messages[0]["text"] for chunk in chunks} == {f"{clinic.name}からのお知らせ"}
    assert {(c.mode, c.status, c.attempts, c.sent) for c in chunks} == {("multicast", "pending", 0, 0)}


def test_a_plan_in_several_batches_continues_the_sequence_and_the_friends(sandbox, app):
    app.config["DELIVERY_PLAN_BATCH"] = 1_000
    try:
        clinic = connected_clinic(sandbox, "1740000002")
        add_friends(sandbox, clinic, 2_300, register=False)
        delivery_id = _planned_delivery(clinic)
        with tenant_scope(clinic.id):
            planner.plan(delivery_id)
            chunks = db.session.scalars(sa.select(DeliveryChunk).order_by(DeliveryChunk.seq)).all()
            delivery = db.session.get(Delivery, delivery_id)
            friend_ids = db.session.scalars(sa.select(Friend.id).order_by(Friend.id)).all()
    finally:
        app.config.pop("DELIVERY_PLAN_BATCH")
    assert [chunk.seq for chunk in chunks] == list(range(5))  # batches of 1,000, 1,000 and 300
    assert [chunk.size for chunk in chunks] == [500, 500, 500, 500, 300]
    assert [i for chunk in chunks for i in chunk.friend_ids] == friend_ids
    assert (delivery.status, delivery.planned, delivery.targeted) == (DeliveryStatus.SENDING, 2_300, 2_300)
