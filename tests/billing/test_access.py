"""Only owners and admins (``billing.manage``) of the paying agency or organization see or
change its billing; another agency's billing page is a 404, as if it did not exist."""

from __future__ import annotations

import pytest

from tests.billing.support import billing_path, csrf
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user
from tests.helpers import login


@pytest.fixture
def agency_a():
    agency = gen_agency("みらい")
    organization = gen_organization(agency)
    return agency, organization, gen_clinic(organization)


def _signed_in(app, role: str, **scope):
    client = app.test_client()
    login(client, gen_user(role, **scope))
    return client


def test_another_agencys_owner_cannot_see_or_start_its_billing(app, agency_a, stripe_sandbox):
    agency, _organization, _clinic = agency_a
    intruder = _signed_in(app, "owner", agency=gen_agency("よその代理店"))
    path = billing_path("agency", agency.slug)
    assert intruder.get(path).status_code == 404
    token = csrf(intruder, "/")
    assert intruder.post(path + "checkout", data={"csrf_token": token}).status_code == 404
    assert intruder.post(path + "portal", data={"csrf_token": token}).status_code == 404
    assert stripe_sandbox.requests() == [], "nothing was asked of Stripe"


@pytest.mark.parametrize("role", ["owner", "admin"])
def test_the_agencys_owners_and_admins_manage_its_billing(app, agency_a, role):
    agency, _organization, _clinic = agency_a
    page = _signed_in(app, role, agency=agency).get(billing_path("agency", agency.slug))
    assert page.status_code == 200 and "ご契約・お支払い" in page.get_data(as_text=True)


@pytest.mark.parametrize("role", ["sender", "responder", "analyst", "viewer"])
def test_other_roles_of_the_agency_do_not(app, agency_a, role):
    agency, _organization, clinic = agency_a
    client = _signed_in(app, role, agency=agency)
    assert client.get(billing_path("agency", agency.slug)).status_code == 404
    assert "ご契約・お支払い" not in client.get(f"/c/{clinic.slug}/").get_data(as_text=True)


def test_an_organization_admin_manages_the_organization_not_its_agency(app, agency_a):
    agency, organization, _clinic = agency_a
    client = _signed_in(app, "admin", organization=organization)
    assert client.get(billing_path("agency", agency.slug)).status_code == 404
    assert client.get(billing_path("organization", organization.slug)).status_code == 200


def test_a_clinic_owner_is_told_who_manages_billing(app, agency_a):
    agency, _organization, clinic = agency_a
    client = _signed_in(app, "owner", clinic=clinic)
    assert client.get(billing_path("agency", agency.slug)).status_code == 404
    page = client.get(f"/c/{clinic.slug}/billing").get_data(as_text=True)
    assert f"「{agency.name}」のオーナー・管理者が管理しています" in page


def test_the_clinic_menu_leads_an_agency_admin_to_the_agency_billing_page(app, agency_a):
    agency, _organization, clinic = agency_a
    client = _signed_in(app, "admin", agency=agency)
    assert "ご契約・お支払い" in client.get(f"/c/{clinic.slug}/").get_data(as_text=True)
    answer = client.get(f"/c/{clinic.slug}/billing")
    assert answer.status_code == 302 and answer.headers["Location"].endswith(billing_path("agency", agency.slug))


def test_signed_out_visitors_and_unknown_payers(client, app, agency_a):
    agency, _organization, _clinic = agency_a
    assert client.get(billing_path("agency", agency.slug)).status_code == 302  # to the login page
    admin = _signed_in(app, "admin", agency=agency)
    assert admin.get(billing_path("clinic", agency.slug)).status_code == 404
    assert admin.get(billing_path("agency", "no-such-agency")).status_code == 404
