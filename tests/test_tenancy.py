"""Who sees which clinic: clinic, organization, agency and platform scopes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.tenancy.scoping import TenantScopeError
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user
from tests.helpers import clinic_routes, login


@pytest.fixture
def world():
    agency = gen_agency()
    corporation = gen_organization(agency)
    branches = [gen_clinic(corporation) for _ in range(3)]
    client_clinic = gen_clinic(gen_organization(agency))
    outsider_org = gen_organization()
    outsider = gen_clinic(outsider_org)
    return {
        "agency": agency,
        "corporation": corporation,
        "branches": branches,
        "client_clinic": client_clinic,
        "outsider_org": outsider_org,
        "outsider": outsider,
    }


def _visible_slugs(client) -> set[str]:
    page = client.get("/").get_data(as_text=True)
    return {slug for slug in __import__("re").findall(r'data-clinic="([^"]+)"', page)}


def test_clinic_user_gets_404_for_another_clinics_pages(client, app, world):
    mine, theirs = world["branches"][0], world["outsider"]
    login(client, gen_user("sender", clinic=mine))
    assert client.get(f"/c/{mine.slug}/").status_code == 200
    for rule, endpoint in clinic_routes(app):
        if "<" in rule.replace("<clinic>", ""):
            continue  # routes with more parameters are walked by their capability's tests
        url = rule.replace("<clinic>", theirs.slug)
        assert client.get(url).status_code == 404, f"{endpoint} leaked clinic {theirs.slug}"


def test_organization_admin_sees_all_its_branches_and_no_other_organization(client, world):
    login(client, gen_user("admin", organization=world["corporation"]))
    response = client.get("/")
    slugs = _visible_slugs(client)
    assert response.status_code == 200
    assert slugs == {c.slug for c in world["branches"]}
    assert client.get(f"/c/{world['outsider'].slug}/").status_code == 404
    assert client.get(f"/c/{world['client_clinic'].slug}/").status_code == 404


def test_agency_user_sees_its_clients_only(client, world):
    login(client, gen_user("sender", agency=world["agency"]))
    assert _visible_slugs(client) == {c.slug for c in world["branches"]} | {world["client_clinic"].slug}
    assert client.get(f"/c/{world['outsider'].slug}/").status_code == 404


def test_platform_owner_sees_every_clinic(client, world):
    login(client, gen_user("owner"))
    everything = {c.slug for c in world["branches"]} | {world["client_clinic"].slug, world["outsider"].slug}
    assert _visible_slugs(client) == everything


def test_clinic_switcher_lists_only_visible_clinics(client, world):
    mine = world["branches"][1]
    login(client, gen_user("viewer", clinic=mine))
    page = client.get(f"/c/{mine.slug}/").get_data(as_text=True)
    assert f'value="{mine.slug}"' in page
    assert f'value="{world["outsider"].slug}"' not in page
    assert client.get(f"/switch?clinic={world['outsider'].slug}").location.endswith("/")


def test_anonymous_visitor_is_sent_to_login(client, world):
    response = client.get(f"/c/{world['branches'][0].slug}/")
    assert response.status_code == 302 and "/auth/login" in response.location


def test_tenant_owned_queries_outside_any_scope_are_refused():
    from saas.tenancy.scoping import TenantOwned

    owned = [m.class_ for m in db.Model.registry.mappers if issubclass(m.class_, TenantOwned)]
    if not owned:
        pytest.skip("no clinic-owned model registered yet")
    with pytest.raises(TenantScopeError):
        db.session.scalars(sa.select(owned[0])).all()
