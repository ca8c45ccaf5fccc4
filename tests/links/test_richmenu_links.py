"""Rich menu URI areas go out as short links (one per URL and menu, no recipient)."""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db
from saas.links.models import LinkClick, TrackedLink
from saas.richmenu import services
from saas.richmenu.models import RichMenu
from saas.tenancy.scoping import tenant_scope
from tests.links.test_links import PATIENT, SHORT
from tests.webhooks.support import connect_clinic

HOMEPAGE = "https://clinic.example.jp/"
AREAS = [
    {"x": 0, "y": 0, "width": 1250, "height": 843, "label": "HP", "action": {"type": "uri", "uri": HOMEPAGE}},
    {"x": 1250, "y": 0, "width": 1250, "height": 843, "label": "電話", "action": {"type": "uri", "uri": "tel:0300000000"}},
]  # fmt: skip


def deployed_areas(sandbox, clinic, channel, menu) -> list[dict]:
    with tenant_scope(clinic.id):
        services.deploy(clinic, db.session.get(RichMenu, menu))
    created = [r["body"] for r in sandbox.requests(channel) if r["operation"] == "createRichMenu"][-1]
    return [area["action"] for area in created["areas"]]


def test_a_menu_link_redirects_counts_per_link_and_keeps_its_code_across_deploys(sandbox, live_server, client):
    clinic, channel = connect_clinic(sandbox, live_server)
    with tenant_scope(clinic.id):
        menu = RichMenu(clinic_id=clinic.id, name="基本", size="half", areas=AREAS, is_default=True)
        db.session.add(menu)
        db.session.commit()
        menu_id = menu.id
    first = deployed_areas(sandbox, clinic, channel, menu_id)
    again = deployed_areas(sandbox, clinic, channel, menu_id)
    assert first == again, "a redeployed menu keeps its short links"
    assert first[1]["uri"] == "tel:0300000000"
    code = SHORT.fullmatch(first[0]["uri"]).group(1)

    answer = client.get(f"/l/{code}", headers={"User-Agent": PATIENT})
    assert answer.status_code == 302 and answer.headers["Location"] == HOMEPAGE
    db.session.expire_all()
    with tenant_scope(clinic.id):
        (link,) = db.session.scalars(sa.select(TrackedLink)).all()
        (click,) = db.session.scalars(sa.select(LinkClick)).all()
    assert (link.rich_menu_id, link.friend_id, link.delivery_id) == (menu_id, None, None)
    assert (click.link_id, click.friend_id, click.delivery_id) == (link.id, None, None)
