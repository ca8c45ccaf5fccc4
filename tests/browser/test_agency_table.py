"""The agency page in a real browser: an operator of many clients pages through the clients table
(50 a page), sorts it by a column and keeps the sort across pages; the sidebar lists a few clinics
with a search and a link to all of them instead of every client."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from saas.analytics import groups, jobs
from saas.tenancy.services import SIDEBAR_CLINICS
from tests.analytics.support import add_friends, japan_time
from tests.browser_fixtures import sign_in
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user

CLINICS = groups.PAGE_SIZE + 5


def _shown(page) -> list[str]:
    return page.locator('[data-testid="branches"] tbody tr').evaluate_all("rows => rows.map(r => r.dataset.clinic)")


def test_an_agency_operator_pages_and_sorts_the_clients_table_and_finds_a_clinic_from_the_sidebar(page):
    agency = gen_agency(name="ひろがり代理店")
    corporation = gen_organization(agency, name="医療法人ひろがり会")
    clinics = [gen_clinic(corporation, name=f"院{n:02d}-") for n in range(CLINICS)]
    by_name = [c.slug for c in sorted(clinics, key=lambda c: c.name)]
    biggest, second = clinics[7], clinics[40]
    add_friends(biggest.id, *[{"followed_at": japan_time(2)} for _ in range(3)])
    add_friends(second.id, {"followed_at": japan_time(2)})
    jobs.catch_up(7)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    owner = gen_user("owner", agency=agency)
    sign_in(page, owner, two_factor=owner.totp_enabled_at is not None, landing="**/")

    page.locator("#group-analytics").get_by_role("link", name="ひろがり代理店").click()
    page.wait_for_url(f"**/analytics/agencies/{agency.slug}/")
    expect(page.get_by_test_id("branches-range")).to_have_text(f"{CLINICS}件中 1〜50件目")
    assert _shown(page) == by_name[: groups.PAGE_SIZE]
    expect(page.get_by_test_id("branches-prev")).to_have_count(0)

    page.get_by_test_id("branches-next").click()
    expect(page.get_by_test_id("branches-range")).to_have_text(f"{CLINICS}件中 51〜{CLINICS}件目")
    assert _shown(page) == by_name[groups.PAGE_SIZE :]
    expect(page.get_by_test_id("branches-next")).to_have_count(0)

    # sorting by friends starts again at page 1, largest first, and the pager keeps the sort
    page.locator('a[data-sort="friends"]').click()
    expect(page.get_by_test_id("branches-range")).to_have_text(f"{CLINICS}件中 1〜50件目")
    expect(page.locator('th[aria-sort="descending"] a[data-sort="friends"]')).to_have_count(1)
    assert _shown(page)[:2] == [biggest.slug, second.slug]
    page.get_by_test_id("branches-next").click()
    expect(page).to_have_url(re.compile(r"sort=friends.*order=desc|order=desc.*sort=friends"))
    expect(page.locator('th[aria-sort="descending"] a[data-sort="friends"]')).to_have_count(1)
    assert biggest.slug not in _shown(page) and len(_shown(page)) == CLINICS - groups.PAGE_SIZE
    page.get_by_test_id("branches-prev").click()
    assert _shown(page)[:2] == [biggest.slug, second.slug]

    # the same header again: smallest first, so the two clinics with friends are last, on page 2
    page.locator('a[data-sort="friends"]').click()
    expect(page.locator('th[aria-sort="ascending"] a[data-sort="friends"]')).to_have_count(1)
    assert biggest.slug not in _shown(page)
    page.get_by_test_id("branches-next").click()
    assert _shown(page)[-2:] == [second.slug, biggest.slug]

    # the sidebar: a few clinics, a link to all of them, and a search that opens the one found
    tree = page.locator("nav.tenant-tree")
    expect(tree.locator("a.tree-clinic")).to_have_count(SIDEBAR_CLINICS)
    expect(tree.get_by_role("link", name=f"すべてのクリニック（{CLINICS}院）")).to_be_visible()
    tree.get_by_label("クリニックを検索").fill(biggest.name)
    tree.get_by_label("クリニックを検索").press("Enter")
    page.wait_for_url(f"**/c/{biggest.slug}/")
    expect(tree.locator("a.tree-clinic.active")).to_have_text(biggest.name)
    assert errors == []
