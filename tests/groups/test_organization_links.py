"""Group-wide 採用情報 / オンライン診療 links: set once by the organization, deployed by every branch."""

from __future__ import annotations

from saas.booking import services as booking
from saas.booking.models import BookingMode
from saas.extensions import db
from saas.richmenu import layouts, services
from saas.richmenu.models import RichMenu
from saas.tenancy.scoping import tenant_scope
from tests.conftest import csrf_token
from tests.factories import gen_organization, gen_user
from tests.helpers import login, original_url
from tests.webhooks.support import connect_clinic


def _branches(sandbox, live_server):
    organization = gen_organization(name="医療法人さくら会")
    branches = []
    for name in ("渋谷院", "新宿院"):
        clinic, channel = connect_clinic(sandbox, live_server, name=name)
        clinic.organization_id, clinic.address = organization.id, "東京都渋谷区1-1"
        db.session.commit()
        with tenant_scope(clinic.id):
            booking.get_settings(clinic.id).mode = BookingMode.NATIVE
            size, areas = layouts.preset_areas("full6")
            db.session.add(RichMenu(clinic_id=clinic.id, name="基本", size=size, areas=areas, is_default=True))
            db.session.commit()
        branches.append((clinic, channel))
    return organization, branches


def _deployed_links(sandbox, clinic, channel) -> dict[str, str]:
    """Deploy the clinic's menu; the URIs LINE received for the two group-wide areas."""
    with tenant_scope(clinic.id):
        menu = db.session.query(RichMenu).one()
        services.deploy(clinic, menu)
        db.session.commit()
    created = [r["body"] for r in sandbox.requests(channel) if r["operation"] == "createRichMenu"][-1]
    actions = {a["action"]["label"]: original_url(a["action"].get("uri") or "") for a in created["areas"]}
    return {"recruit": actions["採用情報"], "online": actions["オンライン診療"]}


def test_the_organization_link_reaches_every_branch_menu_and_a_clinic_override_wins(client, sandbox, live_server):
    organization, branches = _branches(sandbox, live_server)
    login(client, gen_user("admin", organization=organization))
    response = client.post(
        f"/organizations/{organization.slug}/links",
        data={
            "csrf_token": csrf_token(client),
            "recruitment_url": "https://sakura.example.jp/recruit/",
            "online_consultation_url": "https://sakura.example.jp/online/",
        },
    )
    assert response.status_code == 302
    for clinic, channel in branches:
        assert _deployed_links(sandbox, clinic, channel) == {
            "recruit": "https://sakura.example.jp/recruit/",
            "online": "https://sakura.example.jp/online/",
        }

    (shibuya, shibuya_channel), (shinjuku, shinjuku_channel) = branches
    with tenant_scope(shinjuku.id):
        services.get_links(shinjuku.id).recruitment_url = "https://shinjuku.example.jp/jobs/"
        db.session.commit()
    assert _deployed_links(sandbox, shinjuku, shinjuku_channel)["recruit"] == "https://shinjuku.example.jp/jobs/"
    assert _deployed_links(sandbox, shinjuku, shinjuku_channel)["online"] == "https://sakura.example.jp/online/"
    assert _deployed_links(sandbox, shibuya, shibuya_channel)["recruit"] == "https://sakura.example.jp/recruit/"


def test_only_an_administrator_of_the_organization_edits_its_links(client):
    organization, other = gen_organization(), gen_organization()
    for user in (gen_user("admin", organization=other), gen_user("sender", organization=organization)):
        client.get("/auth/logout")
        login(client, user)
        assert client.get(f"/organizations/{organization.slug}/links").status_code == 404
        data = {"csrf_token": csrf_token(client), "recruitment_url": "https://evil.example.jp/"}
        assert client.post(f"/organizations/{organization.slug}/links", data=data).status_code == 404
    assert services.get_organization_links(organization.id).recruitment_url == ""
    client.get("/auth/logout")
    login(client, gen_user("owner", organization=organization))
    assert client.get(f"/organizations/{organization.slug}/links").status_code == 200
    assert f"/organizations/{organization.slug}/links" in client.get("/").get_data(as_text=True)
