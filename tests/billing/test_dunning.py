"""Dunning steps in time, each sent once, and what a paused account means for sends."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas import billing
from saas.audit.models import AuditEvent
from saas.billing import dunning
from saas.billing.models import BillingAccount, DunningStep
from saas.common import utcnow
from saas.delivery import services as deliveries
from saas.delivery.jobs import start_delivery
from saas.delivery.models import Delivery, DeliveryKind
from saas.extensions import db
from saas.friends.models import Friend
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.billing.support import subjects
from tests.delivery.support import HELLO, add_friends, connected_clinic, drain
from tests.factories import gen_agency, gen_organization, gen_user


@pytest.fixture
def paying(sandbox):
    agency = gen_agency()
    organization = gen_organization(agency)
    clinic = connected_clinic(sandbox, "1730000001", organization=organization)
    gen_user("owner", agency=agency)
    account = BillingAccount(
        agency_id=agency.id,
        plan_key="clinic_monthly",
        stripe_subscription_id="sub_test",
        stripe_customer_id="cus_test",
        status="active",
        quantity=1,
    )
    db.session.add(account)
    db.session.commit()
    return account, clinic


def _fail(account: BillingAccount, when):
    account.status = "past_due"
    dunning.follow_subscription(account, now=when)
    db.session.commit()


def test_a_clinic_nobody_pays_for_may_send_marketing(sandbox):
    clinic = connected_clinic(sandbox, "1730000009")
    assert billing.allows_marketing(clinic)


def test_each_step_is_sent_once_however_often_the_sweep_runs(paying, outbox):
    account, clinic = paying
    failed_at = utcnow() - timedelta(days=10)
    _fail(account, failed_at)
    _fail(account, failed_at)  # the subscription.updated webhook again
    assert subjects(outbox) == ["【Tsunagu】お支払いを確認できませんでした"]
    dunning.advance(account, now=failed_at + timedelta(days=6, hours=1))
    dunning.advance(account, now=failed_at + timedelta(days=6, hours=2))
    assert account.dunning_step == DunningStep.REMINDED and billing.allows_marketing(clinic)
    for hours in (1, 2, 3):
        dunning.advance(account, now=failed_at + timedelta(days=7, hours=hours))
    db.session.commit()
    assert account.dunning_step == DunningStep.PAUSED and not billing.allows_marketing(clinic)
    assert subjects(outbox) == [
        "【Tsunagu】お支払いを確認できませんでした",
        "【Tsunagu】明日から一斉配信が一時停止されます（お支払い未確認）",
        "【Tsunagu】一斉配信を一時停止しました（お支払い未確認）",
    ]
    with platform_scope("test"):
        in_clinic_log = db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.clinic_id == clinic.id)).all()
    assert "billing.marketing_paused" in in_clinic_log


def test_a_scheduled_broadcast_coming_due_while_paused_ends_refused_and_sends_nothing(paying, sandbox):
    account, clinic = paying
    add_friends(sandbox, clinic, 3)
    with tenant_scope(clinic.id):
        delivery = deliveries.create_delivery(messages=HELLO, kind=DeliveryKind.BROADCAST)
        deliveries.submit(delivery)  # allowed now: scheduled for its planning job
        delivery_id = delivery.id
    account.status, account.marketing_paused_at = "past_due", utcnow()
    db.session.commit()
    start_delivery(delivery_id, clinic.id)
    with tenant_scope(clinic.id):
        refused = db.session.get(Delivery, delivery_id)
        db.session.refresh(refused)
        assert refused.status == "refused" and "一時停止中" in refused.stop_reason
    assert not sandbox.requests("1730000001")


def test_a_new_marketing_send_is_refused_but_an_urgent_notice_is_not(paying, sandbox):
    account, clinic = paying
    users = add_friends(sandbox, clinic, 2)
    account.status, account.marketing_paused_at = "past_due", utcnow()
    db.session.commit()
    with tenant_scope(clinic.id):
        broadcast = deliveries.create_delivery(messages=HELLO, kind=DeliveryKind.SEGMENT)
        with pytest.raises(billing.MarketingPaused):
            deliveries.submit(broadcast)
        urgent = deliveries.create_delivery(messages=[{"type": "text", "text": "台風のため休診します"}], kind="urgent")
        deliveries.submit(urgent)
    drain()
    assert [m["message"]["text"] for m in sandbox.inbox("1730000001", users[0])] == ["台風のため休診します"]


def test_a_step_delivery_is_held_at_planning_while_paused(paying, sandbox):
    account, clinic = paying
    friends = add_friends(sandbox, clinic, 2)
    account.status, account.marketing_paused_at = "past_due", utcnow()
    db.session.commit()
    with tenant_scope(clinic.id):
        ids = list(db.session.scalars(sa.select(Friend.id)))
        step = deliveries.create_for_friends(ids, HELLO, title="ステップ配信: 初診後フォロー・1")
        db.session.commit()
        deliveries.submit(step)  # the step runner does not stop for billing: the planner refuses it
        step_id = step.id
    drain()
    db.session.expire_all()
    with tenant_scope(clinic.id):
        assert db.session.get(Delivery, step_id).status == "refused"
    assert not sandbox.inbox("1730000001", friends[0])
