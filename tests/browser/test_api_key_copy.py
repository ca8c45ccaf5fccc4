"""In Chromium: a new API key is shown once, in a field as wide as its box, and 「コピー」 puts it on
the clipboard and says so."""

from __future__ import annotations

import pytest

from tests.browser_fixtures import sign_in
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user

pytestmark = pytest.mark.browser


def test_the_new_key_fills_its_box_and_copy_puts_it_on_the_clipboard(page, live_server):
    agency = gen_agency("みらいメディカル")
    gen_clinic(gen_organization(agency), name="さくら内科")
    admin = gen_user("admin", agency=agency)
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    sign_in(page, admin, landing="**/")
    page.goto("/api-keys")
    page.get_by_label("名前（用途）").fill("予約システム連携")
    page.get_by_role("button", name="作成").click()

    field = page.get_by_label("APIキー", exact=True)
    field.wait_for()
    token = field.input_value()
    assert token.startswith("tsg_") and field.get_attribute("readonly") is not None
    box, section = field.bounding_box(), page.locator("#new-api-key").bounding_box()
    assert box["width"] > 0.7 * section["width"]  # the whole key is readable, not a 20-character slot
    assert "monospace" in field.evaluate("e => getComputedStyle(e).fontFamily")

    copy = page.locator("#new-api-key").get_by_role("button", name="コピー")
    copy.click()
    page.locator("#new-api-key [data-copy-status]").filter(has_text="コピーしました").wait_for(state="attached")
    assert page.evaluate("navigator.clipboard.readText()") == token

    page.goto("/api-keys")
    page.locator("h1").filter(has_text="APIキー").wait_for()
    assert token not in page.content() and page.locator("#new-api-key").count() == 0
