"""Billing end to end over real HTTP: the Stripe stand-in, the LINE sandbox and RQ burst workers.

Sign-up → Checkout → webhook → active → a clinic added (quantity 2, prorated) → the renewal's
payment fails → warnings → grace ends → marketing paused while an urgent notice and an
auto-reply still reach the patient → the invoice is paid → everything restored.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from saas import billing
from saas.audit.models import AuditEvent
from saas.autoreply.models import AutoReplyRule
from saas.billing.jobs import sweep_billing
from saas.billing.models import BillingInvoice
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.friends.models import Friend
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.billing.support import account, agency_with_owner, billing_path, clinic_on_line, csrf, subjects, subscribe
from tests.factories import gen_clinic
from tests.webhooks.support import run_jobs


def _patient_of(sandbox, clinic, channel_id: str) -> str:
    """A patient who adds the clinic as a friend (through the webhook) and agrees to its news."""
    patient = sandbox.add_patient(channel_id, "山田 花子")
    sandbox.follow(channel_id, patient)
    run_jobs()
    with tenant_scope(clinic.id):
        db.session.execute(sa.update(Friend).values(consent_marketing=True))
        db.session.add(
            AutoReplyRule(
                name="駐車場",
                keywords=["駐車場"],
                messages=[{"type": "text", "text": "提携駐車場をご利用いただけます。"}],
            )
        )
        db.session.commit()
    return patient


def _send(client, clinic, **fields):
    path = f"/c/{clinic.slug}/deliveries/new"
    return client.post(f"/c/{clinic.slug}/deliveries", data={"csrf_token": csrf(client, path), **fields})


def _texts(sandbox, channel_id: str, patient: str) -> list[str]:
    return [item["message"].get("text", "") for item in sandbox.inbox(channel_id, patient)]


def _actions() -> list[str]:
    with platform_scope("test: read the audit log"):
        return list(db.session.scalars(sa.select(AuditEvent.action).order_by(AuditEvent.id)))


def test_an_agency_subscribes_pays_per_clinic_and_dunning_never_cuts_patients_off(
    client, sandbox, stripe_sandbox, live_server, outbox
):
    agency, organization, owner = agency_with_owner(client)
    clinic, channel_id = clinic_on_line(sandbox, live_server, organization)
    patient = _patient_of(sandbox, clinic, channel_id)

    page = client.get(billing_path("agency", agency.slug)).get_data(as_text=True)
    assert "未契約" in page and "申し込む（1院・月額 9,800 円）" in page

    landed = subscribe(client, "agency", agency.slug)
    assert landed.status_code == 200
    page = landed.get_data(as_text=True)
    assert "ご契約中" in page and "お申し込みありがとうございます" in page
    delivered = [d["status"] for e in stripe_sandbox.events() for d in e["deliveries"]]
    assert delivered and set(delivered) == {200}, "every signed webhook was accepted"
    paying = account(agency_id=agency.id)
    assert (paying.status, paying.quantity, paying.unit_amount) == ("active", 1, 9800)
    assert db.session.scalars(sa.select(BillingInvoice.status)).all() == ["paid"]

    gen_clinic(organization, name="つなぐ内科 分院")  # onboarding a second clinic, anywhere in the product
    run_jobs()
    (subscription,) = stripe_sandbox.subscriptions()
    assert subscription["items"]["data"][0]["quantity"] == 2
    assert account(agency_id=agency.id).quantity == 2
    page = client.get(billing_path("agency", agency.slug)).get_data(as_text=True)
    assert "2院" in page and "Remaining time on 2 ×" in page, "the next invoice shows the proration"

    stripe_sandbox.decline_next(paying.stripe_customer_id)
    stripe_sandbox.advance(days=32)  # the month renews; the card is declined
    failing = account(agency_id=agency.id)
    assert failing.status == "past_due" and failing.payment_failed_at is not None
    assert billing.allows_marketing(clinic), "marketing goes on during the grace period"
    assert subjects(outbox) == ["【Tsunagu】お支払いを確認できませんでした"]
    dashboard = client.get(f"/c/{clinic.slug}/").get_data(as_text=True)
    assert 'data-testid="billing-banner" data-level="failed"' in dashboard

    failing.payment_failed_at -= timedelta(days=8)  # a week and a day pass
    db.session.commit()
    sweep_billing()
    assert account(agency_id=agency.id).marketing_paused_at is not None
    assert not billing.allows_marketing(clinic)
    assert subjects(outbox)[-1] == "【Tsunagu】一斉配信を一時停止しました（お支払い未確認）"

    refused = _send(client, clinic, audience="all", text="春の健康診断のご案内")
    run_jobs()
    detail = client.get(refused.headers["Location"]).get_data(as_text=True)
    assert "一時停止中" in detail
    _send(client, clinic, audience="all", urgent="1", urgent_confirm="1", text="本日は臨時休診です")
    sandbox.send_text(channel_id, patient, "駐車場はありますか")
    run_jobs()
    texts = _texts(sandbox, channel_id, patient)
    assert "本日は臨時休診です" in texts, "an urgent notice goes out while marketing is paused"
    assert any("提携駐車場" in text for text in texts), "auto-replies go on"
    assert "春の健康診断のご案内" not in texts

    stripe_sandbox.pay(paying.stripe_customer_id)  # a working card in the Customer Portal
    restored = account(agency_id=agency.id)
    assert (restored.status, restored.payment_failed_at, restored.marketing_paused_at) == ("active", None, None)
    assert billing.allows_marketing(clinic)
    assert subjects(outbox)[-1] == "【Tsunagu】お支払いを確認しました。配信を再開できます"
    assert "billing-banner" not in client.get(f"/c/{clinic.slug}/").get_data(as_text=True)
    _send(client, clinic, audience="all", text="再開のお知らせ")
    run_jobs()
    assert "再開のお知らせ" in _texts(sandbox, channel_id, patient)
    history = client.get(billing_path("agency", agency.slug)).get_data(as_text=True)
    for label in (
        "ご契約の申し込みを開始",
        "ご契約の院数を変更",
        "お支払いを確認できませんでした",
        "お支払い未確認のため一斉配信を一時停止",
        "お支払いを確認し配信を再開",
    ):
        assert label in history, label
    actions = _actions()
    for action in (
        "billing.checkout_started",
        "billing.quantity_changed",
        "billing.payment_failed",
        "billing.marketing_paused",
        "billing.restored",
    ):
        assert action in actions
    with platform_scope("test"), tenant_scope(clinic.id):
        statuses = {d.title: d.status for d in db.session.scalars(sa.select(Delivery))}
    assert statuses["春の健康診断のご案内"] == "refused"


def test_removing_a_clinic_lowers_the_quantity_at_once(client, sandbox, stripe_sandbox, live_server):
    agency, organization, _owner = agency_with_owner(client)
    gen_clinic(organization)
    leaving = gen_clinic(organization, name="閉院する分院")
    subscribe(client, "agency", agency.slug)
    assert account(agency_id=agency.id).quantity == 2
    with platform_scope("test: the clinic closes"):
        db.session.delete(db.session.get(Clinic, leaving.id))
        db.session.commit()
    run_jobs()
    assert stripe_sandbox.subscriptions()[0]["items"]["data"][0]["quantity"] == 1
    assert account(agency_id=agency.id).quantity == 1


def test_an_organization_paying_itself_leaves_its_agencys_count(client, sandbox, stripe_sandbox, live_server):
    agency, organization, _owner = agency_with_owner(client)
    gen_clinic(organization)
    independent = gen_clinic(name="自前で払う医院").organization
    independent.agency_id = agency.id
    db.session.commit()
    page = client.get(billing_path("agency", agency.slug)).get_data(as_text=True)
    assert "申し込む（2院" in page
    from tests.factories import gen_user
    from tests.helpers import login

    other = client.application.test_client()
    login(other, gen_user("owner", organization=independent))
    subscribe(other, "organization", independent.slug)
    page = client.get(billing_path("agency", agency.slug)).get_data(as_text=True)
    assert "申し込む（1院" in page, "the organization's clinic is no longer the agency's to pay"


def test_cancelling_in_the_portal_ends_the_subscription_at_period_end(client, sandbox, stripe_sandbox, live_server):
    agency, organization, _owner = agency_with_owner(client)
    clinic = gen_clinic(organization)
    subscribe(client, "agency", agency.slug)
    path = billing_path("agency", agency.slug)
    opened = client.post(path + "portal", data={"csrf_token": csrf(client, path)})
    assert opened.status_code == 303 and "/portal/bps_" in opened.headers["Location"]
    import requests

    requests.post(opened.headers["Location"] + "/cancel", timeout=30)
    assert "期間末で解約予定" in client.get(path).get_data(as_text=True)
    assert billing.allows_marketing(clinic)
    stripe_sandbox.advance(days=32)
    ended = account(agency_id=agency.id)
    assert ended.status == "canceled" and not billing.allows_marketing(clinic)
    assert "申し込む" in client.get(path).get_data(as_text=True), "they can subscribe again"


def test_the_sweep_makes_good_a_quantity_job_that_was_lost(client, sandbox, stripe_sandbox, live_server):
    from saas.queues import get_redis

    agency, organization, _owner = agency_with_owner(client)
    gen_clinic(organization)
    subscribe(client, "agency", agency.slug)
    gen_clinic(organization)
    get_redis().flushdb()  # Redis lost the enqueued job
    assert stripe_sandbox.subscriptions()[0]["items"]["data"][0]["quantity"] == 1
    assert sweep_billing() == 1
    assert stripe_sandbox.subscriptions()[0]["items"]["data"][0]["quantity"] == 2


def test_a_second_checkout_paid_while_the_first_was_open_is_cancelled_not_charged_twice(
    client, sandbox, stripe_sandbox, live_server
):
    from tests.billing.support import pay_on_checkout, start_checkout

    agency, organization, _ = agency_with_owner(client)
    clinic_on_line(sandbox, live_server, organization)
    first, second = start_checkout(client, "agency", agency.slug), start_checkout(client, "agency", agency.slug)
    assert first.status_code == second.status_code == 303  # two tabs, neither paid yet
    pay_on_checkout(client, first.headers["Location"])
    pay_on_checkout(client, second.headers["Location"])

    statuses = sorted(s["status"] for s in stripe_sandbox.subscriptions())
    assert statuses == ["active", "canceled"]
    kept = account(agency_id=agency.id)
    assert kept.status == "active" and kept.stripe_subscription_id in {
        s["id"] for s in stripe_sandbox.subscriptions() if s["status"] == "active"
    }
    assert "billing.duplicate_cancelled" in _actions()
