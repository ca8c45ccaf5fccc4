"""The Stripe stand-in keeps Stripe's contract: every answer the product received in a whole
subscription's life, and every webhook event, has the keys and types of Stripe's own example
object of its type (``../shared/reference/stripe/fixtures3.json``)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from saas.stripe_sandbox.contract import check_answer, find_fixtures, load_fixtures, mismatches
from tests.billing.support import account, agency_with_owner, billing_path, csrf, subscribe
from tests.factories import gen_clinic
from tests.webhooks.support import run_jobs


@pytest.fixture(scope="module")
def fixtures():
    path = find_fixtures(Path(__file__).resolve().parent)
    if path is None:
        pytest.skip("Stripe's fixtures3.json not found (set STRIPE_FIXTURES or keep ../shared beside the repository)")
    return load_fixtures(path)


def _a_whole_life(client, stripe_sandbox):
    agency, organization, _owner = agency_with_owner(client)
    gen_clinic(organization)
    subscribe(client, "agency", agency.slug)
    gen_clinic(organization)
    run_jobs()
    customer = account(agency_id=agency.id).stripe_customer_id
    stripe_sandbox.decline_next(customer)
    stripe_sandbox.advance(days=32)
    stripe_sandbox.pay(customer)
    path = billing_path("agency", agency.slug)
    client.get(path)
    client.post(path + "portal", data={"csrf_token": csrf(client, path)})


def test_every_answer_and_event_has_stripes_shape(client, sandbox, stripe_sandbox, live_server, fixtures):
    _a_whole_life(client, stripe_sandbox)
    answers = [entry for entry in stripe_sandbox.requests() if entry.get("status") == 200]
    kinds = {entry["response"]["object"] for entry in answers}
    assert {
        "customer",
        "product",
        "price",
        "checkout.session",
        "billing_portal.session",
        "subscription",
        "invoice",
        "list",
    } <= kinds
    problems = {f"{e['method']} {e['path']}": check_answer(e["response"], fixtures) for e in answers}
    wrong = {call: found for call, found in problems.items() if found}
    assert not wrong, "\n".join(f"{call}: {found}" for call, found in wrong.items())
    events = [stripe_sandbox.event(e["id"]) for e in stripe_sandbox.events()]
    assert {e["type"] for e in events} >= {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "invoice.paid",
        "invoice.payment_failed",
    }
    assert not [p for e in events for p in check_answer(e, fixtures)]


def test_the_error_answer_has_stripes_error_shape(client, stripe_sandbox):
    import stripe

    c = stripe.StripeClient("sk_test_tsunagu", base_addresses={"api": stripe_sandbox.url}, max_network_retries=0)
    with pytest.raises(stripe.InvalidRequestError) as missing:
        c.v1.subscriptions.retrieve("sub_nothing")
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    with pytest.raises(stripe.AuthenticationError):
        stripe.StripeClient("pk_live_wrong", base_addresses={"api": stripe_sandbox.url}).v1.customers.retrieve("cus_x")


def test_the_check_catches_a_missing_key_a_foreign_key_and_a_wrong_type(fixtures):
    invoice = copy.deepcopy(fixtures["invoice"])
    assert check_answer(invoice, fixtures) == []
    del invoice["hosted_invoice_url"]
    invoice["lines"]["data"][0]["amount"] = "1000"
    invoice["surprise"] = 1
    found = check_answer(invoice, fixtures)
    assert "invoice.hosted_invoice_url: missing" in found
    assert "invoice.lines.data[0].amount: string where Stripe has number" in found
    assert "invoice.surprise: not in Stripe's object" in found
    assert mismatches({"a": None}, {"a": {"b": 1}}) == []  # null stands for an unset field
