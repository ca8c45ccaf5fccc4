"""各院への配布 in Chromium: HQ opens it from the portal home, checks which branches get a library
template and what changes, publishes to two of three branches, and on the second round sees that one
branch edited its copy: that branch keeps its words unless 上書き is ticked for it."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.library.models import ClinicLibraryOverride, LibraryItem
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.browser_fixtures import sign_in
from tests.groups.test_publishing import _group, _template

pytestmark = pytest.mark.browser


def _copy_body(clinic) -> str | None:
    with tenant_scope(clinic.id):
        copy = db.session.scalars(sa.select(ClinicLibraryOverride)).first()
        return copy.body if copy else None


def _open_template(page, organization) -> None:
    page.goto("/")
    page.get_by_role("link", name="各院への配布").click()
    page.wait_for_url(f"**/organizations/{organization.slug}/publish")
    title = page.get_by_role("cell", name="年末年始のお知らせ", exact=True)
    page.locator("#sources-template tr", has=title).get_by_role("link", name="各院に配布").click()
    page.wait_for_url(re.compile(r".*/publish/item\?.*kind=template.*"))


def _row(page, branch):
    return page.locator(f'#publish-plan tr[data-branch="{branch.slug}"]')


def test_hq_previews_publishes_and_keeps_a_branchs_own_edit(page):
    organization, (shibuya, shinjuku, ikebukuro), hq = _group()
    _, key = _template(organization, "12/29〜1/3は休診です")
    sign_in(page, hq)
    _open_template(page, organization)

    assert _row(page, ikebukuro).get_by_role("checkbox").is_checked()  # every branch is proposed at first
    _row(page, ikebukuro).get_by_role("checkbox").uncheck()
    page.get_by_role("button", name="確認する").click()
    _row(page, ikebukuro).get_by_text("選ばれていません").wait_for()
    assert _row(page, shibuya).get_attribute("data-plan") == "new"
    assert "12/29〜1/3は休診です" in _row(page, shinjuku).inner_text()
    assert _copy_body(shibuya) is None  # 確認 writes nothing

    page.get_by_role("button", name="選んだ院に配布する").click()
    page.wait_for_url(f"**/organizations/{organization.slug}/publish")
    written = page.get_by_text("配布しました:").inner_text()
    assert shibuya.name in written and shinjuku.name in written and ikebukuro.name not in written
    assert page.locator("#publications tr[data-publication]").count() == 1
    assert (_copy_body(shibuya), _copy_body(shinjuku), _copy_body(ikebukuro)) == ("12/29〜1/3は休診です",) * 2 + (None,)

    with platform_scope("test"):
        db.session.scalars(sa.select(LibraryItem).filter_by(item_key=key)).one().body = "12/28〜1/4は休診です"
        db.session.commit()
    with tenant_scope(shinjuku.id):
        db.session.scalars(sa.select(ClinicLibraryOverride)).one().body = "新宿院は12/30〜1/2休診です"
        db.session.commit()

    page.reload()
    page.locator("[data-source-changed]").wait_for()
    page.get_by_role("link", name="もう一度配布").click()
    _row(page, ikebukuro).get_by_role("checkbox").uncheck()
    page.get_by_role("button", name="確認する").click()
    _row(page, ikebukuro).get_by_text("選ばれていません").wait_for()
    assert _row(page, shinjuku).get_attribute("data-plan") == "edited"
    assert _row(page, shinjuku).get_by_text("新宿院は12/30〜1/2休診です").is_visible()
    page.get_by_role("button", name="選んだ院に配布する").click()
    page.get_by_text(f"院で編集されているため上書きしませんでした: {shinjuku.name}").wait_for()
    assert (_copy_body(shibuya), _copy_body(shinjuku)) == ("12/28〜1/4は休診です", "新宿院は12/30〜1/2休診です")

    page.get_by_role("link", name="もう一度配布").click()
    _row(page, ikebukuro).get_by_role("checkbox").uncheck()
    _row(page, shinjuku).get_by_role("checkbox", name="院の内容を上書きする").check()
    page.get_by_role("button", name="選んだ院に配布する").click()
    page.get_by_text(f"配布しました: {shinjuku.name}").wait_for()
    assert _copy_body(shinjuku) == "12/28〜1/4は休診です"
