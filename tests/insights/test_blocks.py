"""Blocks attributed to deliveries: a real unfollow webhook (sandbox → app → worker) enqueues the
attribution job; 24 h and 72 h windows, the last delivery wins, a block outside 72 h is nobody's."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.common import utcnow
from saas.delivery.models import Delivery, DeliveryChunk, DeliveryKind
from saas.extensions import db
from saas.friends.models import Friend
from saas.insights import blocks, rollup, services
from saas.insights.jobs import attribute_block
from saas.insights.models import BlockAttribution, DeliveryInsight
from saas.quota.plans import set_clinic_plan
from saas.receipts.models import FriendReceipt
from saas.tenancy.scoping import tenant_scope
from tests.delivery.support import drain
from tests.factories import gen_user
from tests.helpers import login
from tests.insights.support import insight_of, send
from tests.webhooks.support import connect_clinic


@pytest.fixture
def clinic_and_channel(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    with tenant_scope(clinic.id):
        set_clinic_plan(clinic.id, "standard", extra_allowed=True)
    return clinic, channel


def friends(sandbox, clinic, channel, count: int) -> list[str]:
    """Patients who followed through the webhook and said yes to marketing."""
    patients = [sandbox.add_patient(channel, f"患者{n}") for n in range(count)]
    for patient in patients:
        sandbox.follow(channel, patient)
    drain()
    with tenant_scope(clinic.id):
        db.session.execute(sa.update(Friend).values(consent_marketing=True))
        db.session.commit()
    return patients


def reached_ago(clinic, delivery_id: int, hours: float) -> None:
    """Pretend LINE accepted the delivery's requests ``hours`` ago (its chunks and receipts)."""
    with tenant_scope(clinic.id):
        for model in (DeliveryChunk, FriendReceipt):
            db.session.execute(
                sa.update(model)
                .where(model.delivery_id == delivery_id)
                .values(sent_at=utcnow() - timedelta(hours=hours))
            )
        db.session.commit()


def block(sandbox, channel: str, patient: str) -> None:
    sandbox.unfollow(channel, patient)
    drain()


def test_blocks_within_24_and_72_hours_count_for_the_delivery_and_one_outside_does_not(
    sandbox, clinic_and_channel, client
):
    clinic, channel = clinic_and_channel
    early, later, late = friends(sandbox, clinic, channel, 3)
    delivery_id = send(clinic)

    reached_ago(clinic, delivery_id, 2)
    block(sandbox, channel, early)
    reached_ago(clinic, delivery_id, 30)
    block(sandbox, channel, later)
    reached_ago(clinic, delivery_id, 73)
    block(sandbox, channel, late)

    row = insight_of(clinic, delivery_id)
    assert (row.blocks_24h, row.blocks_72h, row.reached) == (1, 2, 3)
    with tenant_scope(clinic.id):
        assert services.block_attribution(delivery_id).rate_72h == pytest.approx(66.67)
        assert db.session.scalar(sa.select(sa.func.count(BlockAttribution.id))) == 2
    login(client, gen_user("sender", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/").get_data(as_text=True)
    assert 'data-total="blocks-24h">1</p>' in page and 'data-total="blocks-72h">2</p>' in page
    detail = client.get(f"/c/{clinic.slug}/deliveries/{delivery_id}").get_data(as_text=True)
    assert 'data-testid="report-link"' in detail and "data-figure=" not in detail  # one report, not two


def test_a_block_goes_to_the_last_delivery_received_and_a_tie_to_the_later_created(sandbox, clinic_and_channel):
    clinic, channel = clinic_and_channel
    (patient,) = friends(sandbox, clinic, channel, 1)
    older, newer = send(clinic), send(clinic)
    reached_ago(clinic, older, 10)
    reached_ago(clinic, newer, 5)
    with tenant_scope(clinic.id):
        friend_id = db.session.scalar(sa.select(Friend.id))
        assert blocks.attribute(friend_id, utcnow()) == newer
        same = utcnow() - timedelta(hours=1)
        db.session.execute(sa.update(FriendReceipt).values(sent_at=same))
        db.session.commit()
        assert blocks.last_received(friend_id, utcnow()) == (newer, same)


def test_an_attribution_run_twice_counts_once(sandbox, clinic_and_channel):
    clinic, channel = clinic_and_channel
    (patient,) = friends(sandbox, clinic, channel, 1)
    delivery_id = send(clinic)
    block(sandbox, channel, patient)
    with tenant_scope(clinic.id):
        friend = db.session.scalar(sa.select(Friend))
        at = friend.blocked_at.isoformat()
    assert attribute_block(clinic.id, friend.id, at) == delivery_id  # the webhook's job already ran once
    assert insight_of(clinic, delivery_id).blocks_24h == 1


def test_a_block_at_another_clinic_never_counts_for_this_clinics_delivery(sandbox, clinic_and_channel, live_server):
    clinic, channel = clinic_and_channel
    friends(sandbox, clinic, channel, 1)
    delivery_id = send(clinic)
    other, other_channel = connect_clinic(sandbox, live_server, name="別の医院")
    stranger = sandbox.add_patient(other_channel, "他院の患者")
    sandbox.follow(other_channel, stranger)
    drain()
    block(sandbox, other_channel, stranger)
    with tenant_scope(clinic.id):
        own_friend_id = db.session.scalar(sa.select(Friend.id))
    # a job naming this clinic's friend under the other clinic sees none of this clinic's sends
    assert attribute_block(other.id, own_friend_id, utcnow().isoformat()) is None
    assert insight_of(clinic, delivery_id) is None
    with tenant_scope(other.id):
        assert db.session.scalar(sa.select(sa.func.count(DeliveryInsight.id))) == 0


def _history(clinic, rates: list[tuple[int, int, int]]) -> list[int]:
    """Deliveries (days ago, reached, blocks in 72 h) with their counters, as the jobs leave them."""
    ids = []
    with tenant_scope(clinic.id):
        for days, reached, blocked in rates:
            when = utcnow() - timedelta(days=days)
            delivery = Delivery(kind=DeliveryKind.BROADCAST, title=f"{days}日前のお知らせ", status="done", sent=reached)
            delivery.started_at = when
            db.session.add(delivery)
            db.session.flush()
            row = rollup.row_for(delivery)
            row.sent_at, row.blocks_72h, row.blocks_24h = when, blocked, blocked
            ids.append(delivery.id)
        db.session.commit()
    return ids


def test_a_rise_of_the_block_rate_above_the_clinics_baseline_is_shown_with_the_messages_responsible(
    sandbox, clinic_and_channel, client, live_server
):
    clinic, _ = clinic_and_channel
    other, _ = connect_clinic(sandbox, live_server, name="別の医院")
    _history(other, [(60, 1000, 5)])
    _history(clinic, [(60, 1000, 5), (40, 1000, 5), (3, 500, 1)])
    assert _warning_of(clinic) is None  # 0.2 % recently against 0.5 % before
    spike = _history(clinic, [(2, 400, 12)])[0]

    warning = _warning_of(clinic)
    assert warning.baseline_rate == 0.5 and warning.recent_rate > 1.0
    assert [d.id for d, _ in warning.responsible] == [spike]
    login(client, gen_user("sender", clinic=clinic))
    for path in ("", "deliveries"):
        page = client.get(f"/c/{clinic.slug}/{path}").get_data(as_text=True)
        assert 'data-testid="block-warning"' in page and "2日前のお知らせ" in page
    client.post("/auth/logout")
    login(client, gen_user("sender", clinic=other))
    assert 'data-testid="block-warning"' not in client.get(f"/c/{other.slug}/").get_data(as_text=True)


def _warning_of(clinic):
    with tenant_scope(clinic.id):
        return services.block_warning()
