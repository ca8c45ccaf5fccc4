"""The portal's API key page: made for a scope one administers, shown once, revocable; others' keys are 404."""

from __future__ import annotations

import re

import sqlalchemy as sa

from saas.api.models import ApiKey
from saas.audit.models import AuditEvent
from saas.extensions import db
from tests.conftest import csrf_token
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user
from tests.helpers import login


def _agency_admin():
    agency = gen_agency()
    clinic = gen_clinic(gen_organization(agency))
    return agency, clinic, gen_user("admin", agency=agency)


def test_an_agency_admin_makes_a_key_that_is_shown_once_and_works(client):
    agency, clinic, admin = _agency_admin()
    login(client, admin)
    page = client.post(
        "/api-keys",
        data={
            "name": "予約システム",
            "scope": f"agency:{agency.id}",
            "role": "sender",
            "csrf_token": csrf_token(client),
        },
    )
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    token = re.search(r'value="(tsg_[^"]+)" data-api-token', page.get_data(as_text=True)).group(1)
    assert token not in client.get("/api-keys").get_data(as_text=True)
    api = client.application.test_client()
    listed = api.get("/api/v1/clinics", headers={"Authorization": f"Bearer {token}"}).json
    assert [c["slug"] for c in listed["data"]] == [clinic.slug]
    assert db.session.scalar(sa.select(AuditEvent.action).where(AuditEvent.action == "api_key.create"))


def test_revoking_a_key_ends_it_at_once(client):
    agency, _, admin = _agency_admin()
    login(client, admin)
    client.post(
        "/api-keys",
        data={"name": "連携", "scope": f"agency:{agency.id}", "role": "viewer", "csrf_token": csrf_token(client)},
    )
    key = db.session.scalars(sa.select(ApiKey)).one()
    client.post(f"/api-keys/{key.id}/revoke", data={"csrf_token": csrf_token(client)})
    db.session.expire_all()
    assert db.session.get(ApiKey, key.id).revoked_at is not None


def test_a_scope_one_does_not_administer_cannot_be_chosen_nor_its_keys_revoked(client):
    agency, _, admin = _agency_admin()
    other_agency, _, other_admin = _agency_admin()
    login(client, admin)
    refused = client.post(
        "/api-keys",
        data={"name": "x", "scope": f"agency:{other_agency.id}", "role": "admin", "csrf_token": csrf_token(client)},
    )
    assert refused.status_code == 422 and db.session.scalar(sa.select(sa.func.count(ApiKey.id))) == 0
    from saas.api import keys

    theirs, _ = keys.create_key("theirs", "admin", "agency", other_agency.id)
    db.session.commit()
    assert client.post(f"/api-keys/{theirs.id}/revoke", data={"csrf_token": csrf_token(client)}).status_code == 404
    assert "theirs" not in client.get("/api-keys").get_data(as_text=True)


def test_staff_who_administer_nothing_do_not_get_the_page(client):
    clinic = gen_clinic()
    login(client, gen_user("sender", clinic=clinic))
    assert client.get("/api-keys").status_code == 404


def test_the_reference_page_lists_every_operation_in_japanese(client):
    _, _, admin = _agency_admin()
    login(client, admin)
    page = client.get("/api-reference").get_data(as_text=True)
    assert "APIリファレンス" in page and "/clinics/{clinic_slug}/deliveries" in page and "curl" in page
