"""The billing page in a real browser: an agency owner subscribes through the Stripe stand-in's
Checkout, comes back to an active plan with its invoice, and visits the Customer Portal."""

from __future__ import annotations

from tests.browser_fixtures import sign_in
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user


def test_an_agency_owner_subscribes_and_returns_from_checkout_and_the_portal(page, stripe_sandbox, live_server):
    agency = gen_agency("みらいメディカル")
    organization = gen_organization(agency)
    clinic = gen_clinic(organization, name="さくら内科")
    gen_clinic(organization, name="さくら内科 分院")
    owner = gen_user("owner", agency=agency)
    sign_in(page, owner)
    page.goto(f"/c/{clinic.slug}/")
    page.get_by_role("link", name="ご契約・お支払い").click()
    page.wait_for_url(f"**/billing/agency/{agency.slug}/")
    assert page.get_by_test_id("billing-status").inner_text() == "未契約"
    page.get_by_test_id("start-checkout").click()
    page.wait_for_url(f"{stripe_sandbox.url}/checkout/**")
    assert page.get_by_test_id("checkout-total").inner_text() == "¥19,600"
    page.get_by_role("button", name="支払う / Pay").click()
    page.wait_for_url(f"**/billing/agency/{agency.slug}/?session_id=*")
    assert page.get_by_test_id("billing-status").inner_text() == "ご契約中"
    assert page.get_by_test_id("billing-quantity").inner_text() == "2院"
    invoices = page.get_by_test_id("invoices")
    assert "支払い済み" in invoices.inner_text() and "19,600" in invoices.inner_text()
    assert invoices.get_by_role("link", name="PDF").get_attribute("href").endswith("/pdf")
    page.get_by_test_id("open-portal").click()
    page.wait_for_url(f"{stripe_sandbox.url}/portal/**")
    assert page.get_by_test_id("portal-status").inner_text() == "active"
    page.get_by_role("link", name="戻る / Return").click()
    page.wait_for_url(f"**/billing/agency/{agency.slug}/")
    assert page.get_by_test_id("upcoming-total").inner_text() == "19,600 円"
