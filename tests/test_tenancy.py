"""Who sees which clinic: clinic, organization, agency and platform scopes."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.tenancy.scoping import TenantScopeError, _tenant_tables, platform_scope, tenant_scope
from saas.tenancy.services import SIDEBAR_CLINICS
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user
from tests.helpers import assert_counts_isolated, assert_insert_from_select_stays_in_scope, clinic_routes, login


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
    return {slug for slug in re.findall(r'data-clinic="([^"]+)"', page)}


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


def _sidebar(page: str) -> list[str]:
    tree = page.split('class="tenant-tree"')[1].split("</nav>")[0]
    return re.findall(r'href="/c/([^/"]+)/"', tree)


def test_an_agency_of_many_clinics_gets_a_short_sidebar_with_a_search_and_the_home_page_finds_a_clinic(client, world):
    many = [gen_clinic(world["corporation"], name="みなと眼科") for _ in range(SIDEBAR_CLINICS)]
    visible = len(many) + len(world["branches"]) + 1
    login(client, gen_user("viewer", agency=world["agency"]))

    at_client = client.get(f"/c/{world['client_clinic'].slug}/").get_data(as_text=True)
    assert _sidebar(at_client) == [world["client_clinic"].slug], "the current clinic's organization"
    assert f"すべてのクリニック（{visible}院）" in at_client and 'id="clinic-search"' in at_client
    assert f'value="{many[0].slug}"' not in at_client, "the switcher is as short as the sidebar"
    home = client.get("/").get_data(as_text=True)
    assert len(_sidebar(home)) == SIDEBAR_CLINICS
    assert len(_visible_slugs(client)) == visible, "the home page still lists every clinic"

    found = client.get("/", query_string={"q": world["client_clinic"].name})
    assert found.status_code == 302 and found.location.endswith(f"/c/{world['client_clinic'].slug}/")
    eyes = client.get("/", query_string={"q": "みなと眼科"}).get_data(as_text=True)
    assert set(re.findall(r'data-clinic="([^"]+)"', eyes)) == {c.slug for c in many}
    nothing = client.get("/", query_string={"q": world["outsider"].name}).get_data(as_text=True)
    assert "に一致するクリニックはありません" in nothing and world["outsider"].slug not in nothing


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


# ---- counts and aggregates: issue 10 item 13 -------------------------------------------------


def _owners(clinic, user) -> dict[str, int]:
    return {"clinic": clinic.id, "user": user.id}


def test_every_count_and_aggregate_of_every_clinic_table_sees_only_the_scope():
    from tests.test_route_walker import seed_every_clinic_table

    small, large = gen_clinic(), gen_clinic()
    small_staff, large_staff = gen_user("admin", clinic=small), gen_user("admin", clinic=large)
    seeded_small = seed_every_clinic_table(small.id, _owners(small, small_staff))
    for _ in range(3):  # the other clinic is bigger, so a leaked row changes every figure
        seeded_large = seed_every_clinic_table(large.id, _owners(large, large_staff))
    both = sorted(set(seeded_small) & set(seeded_large) & _tenant_tables())
    assert len(both) >= 10, f"the seeder reached too few clinic tables: {both}"
    for name in both:
        assert_counts_isolated(db.metadata.tables[name], small.id, large.id)


def _add_friends(clinic, how_many: int) -> None:
    from saas.friends.models import Friend, Message
    from saas.tenancy.scoping import tenant_scope

    with tenant_scope(clinic.id):
        friends = [
            Friend(line_user_id=f"U{clinic.id:04d}{n:028d}", display_name=f"患者{n}", attributes={})
            for n in range(how_many)
        ]
        db.session.add_all(friends)
        db.session.flush()
        db.session.add_all(Message(friend_id=f.id, direction="in", kind="text", text="こんにちは") for f in friends)
        db.session.commit()


def test_paginated_friends_list_says_how_many_friends_this_clinic_has(client):
    small, large = gen_clinic(), gen_clinic()
    _add_friends(small, 6)
    _add_friends(large, 20)
    login(client, gen_user("admin", clinic=small))
    page = client.get(f"/c/{small.slug}/friends").get_data(as_text=True)
    assert "6 人" in page and "26 人" not in page and "20 人" not in page


_VOLATILE = (
    re.compile(r'name="csrf_token"[^>]*value="[^"]*"'),
    re.compile(r'nonce="[^"]*"'),
    re.compile(r'"X-CSRFToken": "[^"]*"'),
    re.compile(r"\d{4}[-/]\d{2}[-/]\d{2}[ T]\d{2}:\d{2}(:\d{2})?"),
    re.compile(r"\b\d{1,2}:\d{2}(:\d{2})?\b"),
)


def _normalised(html: str) -> str:
    for pattern in _VOLATILE:
        html = pattern.sub("…", html)
    return html


def _clinic_pages(client, app, clinic) -> dict[str, str]:
    pages = {}
    for rule, endpoint in clinic_routes(app):
        if "<" in rule.replace("<clinic>", "") or endpoint.startswith("audit."):
            continue  # the audit log grows with A's own page views; its isolation is tested in tests/audit
        response = client.get(rule.replace("<clinic>", clinic.slug))
        if response.status_code == 200 and response.mimetype in ("text/html", "text/csv", "application/json"):
            pages[endpoint] = _normalised(response.get_data(as_text=True))
    return pages


def test_no_page_of_a_clinic_changes_when_another_clinic_grows(client, app):
    """Every page total and dashboard figure of clinic A is the same before and after clinic B
    (same organization, so the organization pages see both) gets more rows in every table."""
    from tests.test_route_walker import seed_every_clinic_table

    organization = gen_organization()
    small, large = gen_clinic(organization), gen_clinic(organization)
    owner = gen_user("owner", clinic=small)
    large_staff = gen_user("admin", clinic=large)
    _add_friends(small, 2)
    _add_friends(large, 5)
    seed_every_clinic_table(large.id, _owners(large, large_staff))
    login(client, owner)
    before = _clinic_pages(client, app, small)
    assert len(before) >= 10 and "friends.index" in before and "portal.clinic_dashboard" in before
    for _ in range(3):
        seed_every_clinic_table(large.id, _owners(large, large_staff))
    after = _clinic_pages(client, app, small)
    changed = sorted(endpoint for endpoint in before if before[endpoint] != after.get(endpoint))
    assert not changed, f"pages of clinic A changed when clinic B grew: {changed}"


def test_insert_from_select_copies_only_the_scopes_rows_and_writes_only_its_clinic():
    small, large = gen_clinic(), gen_clinic()
    _add_friends(small, 2)
    _add_friends(large, 5)
    tags = db.metadata.tables["tag"]
    friends = db.metadata.tables["friend"]
    with tenant_scope(small.id):
        copied = sa.select(sa.literal(small.id), friends.c.display_name, sa.literal("blue")).select_from(friends)
        db.session.execute(sa.insert(tags).from_select(["clinic_id", "name", "color"], copied))
        db.session.commit()
    with platform_scope("test: what was written"):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(tags)) == 2
    assert_insert_from_select_stays_in_scope(tags, small.id, large.id)


def test_an_agency_user_never_sees_another_agencys_clinics_on_the_agency_page_nor_by_asking_for_their_ids(client):
    """The scope's criterion is one array parameter on Postgres (``clinic_id = ANY(...)``), a list
    elsewhere: either way agency A's staff read none of agency B's figures, asked for or not."""
    from saas.analytics import jobs
    from saas.analytics.models import ClinicDay
    from saas.analytics.reports import totals_for
    from saas.friends.models import Friend
    from saas.tenancy.services import visible_clinic_ids
    from tests.analytics.support import add_friends, japan_time

    agency_a, agency_b = gen_agency(name="代理店A"), gen_agency(name="代理店B")
    mine = [gen_clinic(gen_organization(agency_a), name="A院") for _ in range(2)]
    theirs = gen_clinic(gen_organization(agency_b), name="B院")
    add_friends(mine[0].id, {"followed_at": japan_time(2)})
    their_friends = add_friends(theirs.id, *[{"followed_at": japan_time(2)} for _ in range(7)])
    jobs.catch_up(7)
    user = gen_user("owner", agency=agency_a)
    login(client, user)

    page = client.get(f"/analytics/agencies/{agency_a.slug}/").get_data(as_text=True)
    assert theirs.name not in page and theirs.slug not in page
    assert all(clinic.slug in page for clinic in mine)
    assert 'data-total="friends">1<' in page  # B's seven friends are nowhere in A's totals
    for name in ("health", "friends", "block_rate", "bookings"):
        assert theirs.name not in client.get(f"/analytics/agencies/{agency_a.slug}/{name}.csv").get_data(as_text=True)
    assert client.get(f"/analytics/agencies/{agency_b.slug}/").status_code == 404
    assert client.get(f"/analytics/agencies/{agency_b.slug}/health.csv").status_code == 404

    statements: list[tuple[str, object]] = []

    def capture(conn, cursor, statement, parameters, *args):
        statements.append((statement, parameters))

    sa.event.listen(db.engine, "before_cursor_execute", capture)
    try:
        with tenant_scope(visible_clinic_ids(user)):  # what A's requests run in
            period, recent = totals_for([theirs.id, mine[0].id], 30, 7)  # asking for B's clinic by id
            assert period[theirs.id].friends_now == 0 and recent[theirs.id].total("follows") == 0
            assert period[mine[0].id].friends_now == 1
            assert db.session.scalars(sa.select(ClinicDay).where(ClinicDay.clinic_id == theirs.id)).all() == []
            assert db.session.get(Friend, their_friends[0]) is None
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", capture)
    if db.engine.dialect.name == "postgresql":
        scoped = [s for s, _ in statements if "analytics_clinic_day" in s]
        assert scoped and all("ANY" in s for s in scoped)
        assert not any(re.search(r"clinic_id IN \(", s) for s in scoped)


@pytest.mark.parametrize("loader", ["joinedload", "selectinload"])
def test_a_relationship_load_takes_each_scopes_clinics_though_its_sql_is_cached(loader):
    """Tables the ORM adds when it compiles (eager loads) are scoped by ``with_loader_criteria``,
    whose SQL is cached: the clinics bound (an array on Postgres) must be each request's own."""
    from sqlalchemy import orm

    from saas.friends.models import Friend, FriendTag, Tag

    mine, theirs, third = (clinic.id for clinic in (gen_clinic(), gen_clinic(), gen_clinic()))
    with platform_scope("test: a tag row that points across clinics"):
        friend = Friend(clinic_id=mine, line_user_id="U" + "1" * 32, attributes={})
        foreign_tag = Tag(clinic_id=theirs, name="他院のタグ")
        db.session.add_all([friend, foreign_tag])
        db.session.flush()
        db.session.add(FriendTag(clinic_id=mine, friend_id=friend.id, tag_id=foreign_tag.id))
        db.session.commit()
        friend_id = friend.id
    option = getattr(orm, loader)(Friend.tags)

    def tags_seen(scope) -> list[str]:
        db.session.expunge_all()
        with tenant_scope(scope):
            loaded = db.session.scalars(sa.select(Friend).where(Friend.id == friend_id).options(option)).unique().one()
            return [tag.name for tag in loaded.tags]

    for _ in range(2):  # the second round runs the cached statements
        assert tags_seen(mine) == []
        assert tags_seen([mine, theirs]) == ["他院のタグ"]
        assert tags_seen([mine, third]) == []


def _statement_shapes():
    """Statements of every shape the tenant hook rewrites, by name."""
    from saas.delivery.models import Delivery, DeliveryChunk
    from saas.friends.models import Friend, FriendTag, Tag

    friend, tag = Friend.__table__, Tag.__table__
    tags = sa.select(tag.c.name.label("name")).subquery("tags")
    return {
        "entity": sa.select(Friend).where(Friend.status == "following").order_by(Friend.id).limit(5),
        "columns": sa.select(Friend.id, Friend.line_user_id).where(Friend.id.in_([1, 2, 3])),
        "core table": sa.select(friend.c.id).where(friend.c.status == "following"),
        "count": sa.select(sa.func.count(Friend.id)).where(Friend.status == "blocked"),
        "ORM join": sa.select(Friend.id).join(FriendTag, FriendTag.friend_id == Friend.id).join(Tag),
        "outer join": sa.select(Friend.id, Tag.name).outerjoin(FriendTag, FriendTag.friend_id == Friend.id),
        "core outer join": sa.select(friend.c.id).select_from(friend.outerjoin(tag, tag.c.id == friend.c.id)),
        "EXISTS": sa.select(Friend.id).where(sa.exists().where(FriendTag.friend_id == Friend.id)),
        "IN subquery": sa.select(Tag.name).where(Tag.id.in_(sa.select(FriendTag.tag_id))),
        "union": sa.union_all(sa.select(Friend.id), sa.select(Tag.id)),
        "CTE": sa.select(sa.literal_column("id")).select_from(sa.select(Friend.id).cte("recent")),
        "update": sa.update(Friend).where(Friend.id == 7).values(status="blocked"),
        "update with EXISTS": sa.update(DeliveryChunk)
        .where(DeliveryChunk.id == 3, sa.select(Delivery.id).where(Delivery.id == DeliveryChunk.delivery_id).exists())
        .values(status="sending"),
        "delete": sa.delete(FriendTag).where(FriendTag.tag_id == 9),
        "columns chosen after a subquery": sa.select(tags.c.name)
        .join(friend, friend.c.display_name != tags.c.name)
        .with_only_columns(sa.literal_column("tags.name"), friend.c.id),
    }


@pytest.mark.parametrize("scope", [(5,), (5, 8)], ids=["one clinic", "two clinics"])
def test_the_shallow_rewrite_of_a_flat_statement_is_the_full_rewrite(scope):
    """The hook rewrites a statement with nothing nested on a shallow copy (the fast path); every
    shape, nested or flat, must come out as the whole statement cloned and rewritten would."""
    from saas.tenancy.scoping import _options_and_nesting, _scoped_by_cloning, _scoped_statement

    dialect = db.session.get_bind().dialect
    flat = []
    for name, statement in _statement_shapes().items():
        fast = _scoped_statement(statement, _tenant_tables(), scope, dialect.name)
        full = _scoped_by_cloning(statement, _tenant_tables(), scope, dialect.name)
        fast_sql, full_sql = fast.compile(dialect=dialect), full.compile(dialect=dialect)
        assert str(fast_sql) == str(full_sql), name
        assert fast_sql.params == full_sql.params, name
        assert "clinic_id" in str(fast_sql), name
        if not _options_and_nesting(statement)[1]:
            flat.append(name)
    assert {"entity", "columns", "core table", "count", "ORM join", "update", "delete"} <= set(flat)
    nested = {
        "EXISTS",
        "IN subquery",
        "union",
        "CTE",
        "core outer join",
        "update with EXISTS",
        "columns chosen after a subquery",
    }
    assert not nested & set(flat)


@pytest.fixture
def two_clinics_with_a_tag_each():
    """Clinics A and B, each with a friend tagged with a tag of its own (names say whose)."""
    from saas.friends.models import Friend, FriendTag, Tag

    ids = {}
    with platform_scope("test: a friend and a tag in each of two clinics"):
        for clinic in (gen_clinic(name="A"), gen_clinic(name="B")):
            friend = Friend(
                clinic_id=clinic.id, line_user_id=f"U{clinic.id:032d}", display_name=f"friend-of-{clinic.id}"
            )
            tag = Tag(clinic_id=clinic.id, name=f"tag-of-{clinic.id}")
            db.session.add_all([friend, tag])
            db.session.flush()
            db.session.add(FriendTag(clinic_id=clinic.id, friend_id=friend.id, tag_id=tag.id))
            ids[clinic.id] = {"friend": friend.id, "tag": tag.id}
        db.session.commit()
    return ids


def test_columns_chosen_after_a_join_or_a_subquery_see_only_the_scope(two_clinics_with_a_tag_each):
    """``with_only_columns()`` sets the earlier columns and joins aside; what they bring into FROM
    (tables joined, a subquery's table) is still scoped."""
    from saas.friends.models import Friend, FriendTag, Tag

    a, b = two_clinics_with_a_tag_each
    friend, friend_tag, tag = Friend.__table__, FriendTag.__table__, Tag.__table__
    core_join = sa.select(friend.c.id).join(friend_tag, friend_tag.c.friend_id == friend.c.id)
    orm_join = sa.select(Friend.id).join(FriendTag, FriendTag.friend_id == Friend.id)
    tags = sa.select(tag.c.name.label("name")).subquery("tags")
    through_subquery = (
        sa.select(tags.c.name)
        .join(friend, friend.c.display_name != tags.c.name)
        .with_only_columns(sa.literal_column("tags.name"), friend.c.id)
    )
    with tenant_scope(a):
        assert db.session.scalar(core_join.with_only_columns(sa.func.count())) == 1
        assert db.session.scalar(orm_join.with_only_columns(sa.func.count())) == 1
        names = db.session.scalars(core_join.with_only_columns(sa.literal_column("friend.display_name"))).all()
        assert names == [f"friend-of-{a}"]
        assert set(db.session.scalars(through_subquery)) == {f"tag-of-{a}"}
        with pytest.raises(TenantScopeError):  # an outer join set aside cannot take an ON criterion
            db.session.scalar(
                sa.select(Friend.id)
                .outerjoin(FriendTag, FriendTag.friend_id == Friend.id)
                .with_only_columns(sa.func.count())
            )


def test_writes_that_would_read_another_clinic_through_an_unscoped_subquery_are_refused(two_clinics_with_a_tag_each):
    from saas.friends.models import Friend, Tag

    a, b = two_clinics_with_a_tag_each
    tag = Tag.__table__
    tags = sa.select(tag.c.id.label("tag_id"), tag.c.name.label("tag_name")).subquery()
    rename = (
        sa.update(Friend)
        .where(
            Friend.id == two_clinics_with_a_tag_each[a]["friend"],
            tags.c.tag_id == two_clinics_with_a_tag_each[b]["tag"],
        )
        .values(display_name=tags.c.tag_name)
    )
    foreign_name = sa.select(tag.c.name).where(tag.c.id == two_clinics_with_a_tag_each[b]["tag"]).scalar_subquery()
    rows = [{"clinic_id": a, "line_user_id": f"U{n:032d}", "display_name": name, "attributes": {}}
            for n, name in ((901, foreign_name), (902, "plain"))]  # fmt: skip
    with tenant_scope(a):
        with pytest.raises(TenantScopeError):
            db.session.execute(rename, execution_options={"synchronize_session": False})
        db.session.rollback()
        with pytest.raises(TenantScopeError):
            db.session.execute(sa.insert(Friend.__table__).values(rows))
        db.session.rollback()
        assert set(db.session.scalars(sa.select(Friend.display_name))) == {f"friend-of-{a}"}
