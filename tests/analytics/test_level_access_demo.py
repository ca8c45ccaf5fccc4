"""Who opens the organization and agency pages, tried with every demo login (tenants/ manifests):
the agency page is for the agency's staff and platform staff; an organization page for its HQ and
the agency above it. Clinic-level staff (owner, analyst, sender…) get a 404 for both, CSVs included."""

from __future__ import annotations

import pytest

from saas.demo import DEMO_PASSWORD
from tests.helpers import login
from tests.portal.demo_portal import _load_manifests_and_staff

AGENCY = "/analytics/agencies/mirai-support/"
SAKURA = "/analytics/organizations/sakura-kai/"
AOBA = "/analytics/organizations/aoba-derm/"
HIKARI = "/analytics/organizations/hikari-kenshin/"
PAGES = (AGENCY, SAKURA, AOBA, HIKARI)

# email → the level pages it opens (every other one is a 404)
OPENS = {
    "platform@tsunagu.example": {AGENCY, SAKURA, AOBA, HIKARI},
    "agency@mirai.example": {AGENCY, SAKURA, AOBA},
    "hq@sakura.example": {SAKURA},
    "owner@sakura.example": set(),
    "sender@sakura.example": set(),
    "responder@sakura.example": set(),
    "analyst@sakura.example": set(),
    "viewer@sakura.example": set(),
    "staff@hikari.example": set(),
}


@pytest.fixture
def demo_staff(app):
    return _load_manifests_and_staff()


@pytest.mark.parametrize("email", sorted(OPENS))
def test_each_demo_login_opens_only_the_level_pages_its_membership_is_at(client, demo_staff, email):
    login(client, demo_staff[email], DEMO_PASSWORD)
    for page in PAGES:
        expected = 200 if page in OPENS[email] else 404
        assert client.get(page).status_code == expected, page
        csv_name = "health.csv" if page == AGENCY else "friends.csv"
        assert client.get(page + csv_name).status_code == expected, page + csv_name
    home = client.get("/").get_data(as_text=True)
    for page in PAGES:
        assert (f'href="{page}"' in home) == (page in OPENS[email]), page
