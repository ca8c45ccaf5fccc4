"""The send pipeline end to end through the sandbox over real HTTP, with in-process workers."""

from __future__ import annotations

import sqlalchemy as sa

from saas.delivery import services
from saas.delivery.models import Delivery, DeliveryChunk, DeliveryStatus
from saas.extensions import db
from saas.friends.models import FriendStatus
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
