"""A tag added or removed on the friend page (or a tag merged or deleted) re-links the friend's
per-segment rich menu at once, through the sandbox, without redeploying any menu."""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db
from saas.friends import services as friends
from saas.friends.models import Friend
from saas.richmenu import layouts, services
from saas.richmenu.models import RichMenu
from saas.tenancy.scoping import tenant_scope
from tests.conftest import csrf_token
from tests.factories import gen_user
from tests.helpers import login
from tests.webhooks.support import connect_clinic, run_jobs


def _linked(sandbox, channel) -> dict[str, str | None]:
    """The menu the sandbox has linked to each patient (their own link, not the default)."""
    return {p["userId"]: p["richMenuId"] for p in sandbox.patients(channel)}


def _menus(clinic) -> dict[str, str]:
    """A default menu and two segment menus (小児, then 健診) deployed; their LINE ids by name."""
    with tenant_scope(clinic.id):
        kids, checkup = friends.get_or_create_tag("小児"), friends.get_or_create_tag("健診")
        menus = [RichMenu(clinic_id=clinic.id, name="基本", is_default=True)]
        menus += [RichMenu(clinic_id=clinic.id, name=t.name, segment_tag_id=t.id) for t in (kids, checkup)]
        for menu in menus:
            menu.size, menu.areas = layouts.preset_areas("half3", ["hours", "faq", "hours"])
            db.session.add(menu)
        db.session.commit()
        return {menu.name: services.deploy(clinic, menu).rich_menu_id for menu in menus}


def _friend_ids(clinic) -> dict[str, int]:
    with tenant_scope(clinic.id):
        return {f.display_name: f.id for f in db.session.scalars(sa.select(Friend))}


def test_tags_added_and_removed_on_the_friend_page_relink_the_menu_at_once(client, sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    child, adult = sandbox.add_patient(channel, "子 一"), sandbox.add_patient(channel, "大人 二")
    for user in (child, adult):
        sandbox.follow(channel, user)
    run_jobs()
    menu = _menus(clinic)
    ids = _friend_ids(clinic)
    with tenant_scope(clinic.id):
        tags = {tag.name: tag.id for tag in friends.clinic_tags()}
    login(client, gen_user("sender", clinic=clinic))
    base = f"/c/{clinic.slug}/friends/{ids['子 一']}/tags"

    def add(tag: str):
        client.post(base, data={"tag_id": tags[tag], "csrf_token": csrf_token(client)})
        run_jobs()
        return _linked(sandbox, channel)

    def remove(tag: str):
        client.post(f"{base}/{tags[tag]}/remove", data={"csrf_token": csrf_token(client)})
        run_jobs()
        return _linked(sandbox, channel)

    assert _linked(sandbox, channel) == {child: None, adult: None}
    assert add("小児") == {child: menu["小児"], adult: None}
    assert add("健診") == {child: menu["健診"], adult: None}, "the menu deployed last wins"
    assert remove("健診") == {child: menu["小児"], adult: None}
    assert remove("小児") == {child: None, adult: None}, "no segment left: back to the default"
    operations = [r["operation"] for r in sandbox.requests(channel)]
    assert operations.count("linkRichMenuIdToUsers") >= 3 and "unlinkRichMenuIdFromUsers" in operations


def test_deleting_or_merging_a_tag_relinks_every_friend_who_carried_it(client, sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    users = [sandbox.add_patient(channel, name) for name in ("子 一", "子 二")]
    for user in users:
        sandbox.follow(channel, user)
    run_jobs()
    menu = _menus(clinic)
    with tenant_scope(clinic.id):
        kids = friends.get_or_create_tag("小児")
        extra = friends.get_or_create_tag("小児科")
        for friend in db.session.scalars(sa.select(Friend)):
            friends.add_tag(friend, extra)
        db.session.commit()
        extra_id, kids_id = extra.id, kids.id
    run_jobs()
    assert set(_linked(sandbox, channel).values()) == {None}
    login(client, gen_user("admin", clinic=clinic))
    client.post(
        f"/c/{clinic.slug}/friends/tags/{extra_id}/merge", data={"into": kids_id, "csrf_token": csrf_token(client)}
    )
    run_jobs()
    assert _linked(sandbox, channel) == {users[0]: menu["小児"], users[1]: menu["小児"]}
    client.post(f"/c/{clinic.slug}/friends/tags/{kids_id}/delete", data={"csrf_token": csrf_token(client)})
    run_jobs()
    assert _linked(sandbox, channel) == {users[0]: None, users[1]: None}
