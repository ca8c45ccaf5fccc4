"""The composer in a real browser: typing updates the LINE-style preview and shows errors in place."""

from __future__ import annotations

from tests.browser_fixtures import sign_in
from tests.factories import gen_clinic, gen_user


def test_typing_updates_the_preview_and_errors_appear_beside_the_message(page):
    clinic = gen_clinic(name="さくら内科")
    sign_in(page, gen_user("sender", clinic=clinic), two_factor=False)
    page.wait_for_url(f"**/c/{clinic.slug}/")
    page.get_by_role("link", name="メッセージ作成").click()
    page.wait_for_url("**/messages/compose")
    page.locator("textarea[name=m0_text]").fill("{{friend.display_name}}様、{{clinic.name}}です。")
    bubble = page.locator("#preview .line-text")
    bubble.filter(has_text="山田 花子様、さくら内科").wait_for()
    page.locator("select[name=m1_type]").select_option("buttons")
    page.locator("textarea[name=m1_text]").fill("ご予約はこちら")
    page.locator("input[name=m1_action0_label]").fill("あ" * 23)
    page.locator("#slot-errors-1").get_by_text("20文字以内にしてください（現在23文字）").wait_for()
    assert page.locator("#slot-errors-0 .field-error").count() == 0
    page.locator("input[name=m1_action0_label]").fill("予約する")
    page.locator("#preview .line-card-action", has_text="予約する").wait_for()
    page.get_by_role("button", name="配信へ進む").click()
    page.wait_for_url("**/deliveries/new?draft=*")  # the send pipeline: choose the audience next
    page.get_by_role("button", name="配信する").wait_for()
    page.screenshot(path="test-artifacts/composer-preview.png", full_page=True)
