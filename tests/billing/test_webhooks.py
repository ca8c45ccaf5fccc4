"""``POST /webhooks/stripe``: Stripe's signature scheme with 300 s tolerance, each event id once,
and events out of order resolved by re-reading the object from the API."""

from __future__ import annotations

import json
import time

import pytest
import requests
import sqlalchemy as sa
import stripe

from saas.billing.models import StripeEvent
from saas.extensions import db
from saas.stripe_sandbox.webhooks import signature_header
from tests.billing.support import account, agency_with_owner, subscribe
from tests.factories import gen_clinic


@pytest.fixture
def subscribed(client, sandbox, stripe_sandbox, live_server):
    agency, organization, _owner = agency_with_owner(client)
    gen_clinic(organization)
    subscribe(client, "agency", agency.slug)
    return agency


def _event_of(stripe_sandbox, kind: str) -> str:
    return [e["id"] for e in stripe_sandbox.events() if e["type"] == kind][-1]


def _post(live_server, payload: str | bytes, signature: str | None):
    headers = {"Content-Type": "application/json"} | ({"Stripe-Signature": signature} if signature else {})
    return requests.post(f"{live_server.url}/webhooks/stripe", data=payload, headers=headers, timeout=30)


def _handled() -> int:
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(StripeEvent))


def test_the_stand_in_signs_as_stripe_does_and_the_stripe_library_verifies_it(subscribed, stripe_sandbox):
    signed = stripe_sandbox.signed(_event_of(stripe_sandbox, "invoice.paid"))
    event = stripe.Webhook.construct_event(signed["payload"], signed["signature"], stripe_sandbox.secret, tolerance=300)
    assert event.type == "invoice.paid" and event.data.object.status == "paid"
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(signed["payload"], signed["signature"], "whsec_someone_else", tolerance=300)
    timestamp, _, digest = signed["signature"].partition(",v1=")
    assert timestamp.startswith("t=") and len(digest) == 64


def test_a_replayed_event_changes_nothing(subscribed, stripe_sandbox, live_server):
    event_id = _event_of(stripe_sandbox, "customer.subscription.created")
    before, count = account(agency_id=subscribed.id), _handled()
    state = (before.status, before.quantity, before.updated_at)
    signed = stripe_sandbox.signed(event_id)
    replay = _post(live_server, signed["payload"], signed["signature"])
    assert replay.status_code == 200 and replay.json() == {"received": "duplicate"}
    assert stripe_sandbox.send_events([event_id]) == [{"id": event_id, "status": 200}]  # Stripe's own redelivery
    after = account(agency_id=subscribed.id)
    assert (after.status, after.quantity, after.updated_at) == state and _handled() == count


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(
            lambda body, sig: (body.replace('"invoice.payment_failed"', '"invoice.paid"'), sig), id="payload changed"
        ),
        pytest.param(lambda body, sig: (body, sig[:-4] + "0000"), id="signature changed"),
        pytest.param(lambda body, sig: (body, None), id="no signature"),
    ],
)
def test_a_tampered_webhook_is_refused_and_nothing_is_stored(subscribed, stripe_sandbox, live_server, tamper):
    stripe_sandbox.hold()
    stripe_sandbox.decline_next(account(agency_id=subscribed.id).stripe_customer_id)
    stripe_sandbox.advance(days=32)
    event_id = _event_of(stripe_sandbox, "invoice.payment_failed")
    signed = stripe_sandbox.signed(event_id)
    body, signature = tamper(signed["payload"], signed["signature"])
    count = _handled()
    answer = _post(live_server, body, signature)
    assert answer.status_code == 400
    assert _handled() == count and account(agency_id=subscribed.id).status == "active"


def test_a_signature_older_than_five_minutes_is_refused(subscribed, stripe_sandbox, live_server):
    stripe_sandbox.hold()
    stripe_sandbox.decline_next(account(agency_id=subscribed.id).stripe_customer_id)
    stripe_sandbox.advance(days=32)
    event_id = _event_of(stripe_sandbox, "invoice.payment_failed")
    payload = stripe_sandbox.signed(event_id)["payload"].encode()
    stale = signature_header(stripe_sandbox.secret, payload, int(time.time()) - 301)
    assert _post(live_server, payload, stale).status_code == 400
    assert account(agency_id=subscribed.id).status == "active"
    fresh = signature_header(stripe_sandbox.secret, payload, int(time.time()) - 200)
    assert _post(live_server, payload, fresh).status_code == 200
    assert account(agency_id=subscribed.id).status == "past_due"


def test_events_arriving_in_reverse_order_end_in_stripes_current_state(subscribed, stripe_sandbox):
    stripe_sandbox.hold()
    customer = account(agency_id=subscribed.id).stripe_customer_id
    stripe_sandbox.decline_next(customer)
    stripe_sandbox.advance(days=32)  # payment fails: past_due
    stripe_sandbox.pay(customer)  # then paid: active again
    held = stripe_sandbox.held()
    kinds = [stripe_sandbox.event(i)["type"] for i in held]
    assert "invoice.payment_failed" in kinds and "invoice.paid" in kinds
    results = stripe_sandbox.send_events(list(reversed(held)))  # the failure arrives last
    assert {r["status"] for r in results} == {200}
    settled = account(agency_id=subscribed.id)
    assert settled.status == "active" and settled.payment_failed_at is None and settled.marketing_paused_at is None


def test_an_event_for_a_customer_we_do_not_know_is_acknowledged_and_ignored(stripe_sandbox, live_server, app):
    payload = json.dumps(
        {
            "id": "evt_unknown",
            "object": "event",
            "type": "invoice.paid",
            "created": int(time.time()),
            "data": {"object": {"id": "in_x", "object": "invoice", "customer": "cus_nobody"}},
        }
    ).encode()
    answer = _post(live_server, payload, signature_header(stripe_sandbox.secret, payload))
    assert answer.status_code == 200 and _handled() == 1


def test_without_a_webhook_secret_the_endpoint_refuses_everything(client, app, monkeypatch):
    monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRET", "")
    assert client.post("/webhooks/stripe", data=b"{}", headers={"Stripe-Signature": "t=1,v1=00"}).status_code == 503
