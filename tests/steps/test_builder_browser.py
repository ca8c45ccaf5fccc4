"""In a real browser: staff build a three-step scenario in the portal and see it as a phone timeline."""

from __future__ import annotations

from tests.browser_fixtures import sign_in
from tests.factories import gen_clinic, gen_user

STEPS = [
    ("ご挨拶", "after_start", "0", "minutes", "{{friend.display_name}}様、ご登録ありがとうございます"),
    ("院長紹介", "after_previous", "1", "days", "院長の{{clinic.name}}でのご紹介です"),
    ("コラム", "after_previous", "3", "days", "季節のスキンケアのコラムです"),
]


def test_staff_build_three_steps_and_preview_them_on_a_phone(page):
    clinic = gen_clinic(name="みなと皮膚科")
    clinic_name = clinic.name
    sign_in(page, gen_user("sender", clinic=clinic), two_factor=False)
    page.wait_for_url(f"**/c/{clinic.slug}/")
    page.get_by_role("link", name="ステップ配信").click()
    page.get_by_label("シナリオ名").fill("美容皮膚科のご紹介")
    page.get_by_label("キー（半角英小文字・リッチメニューのタップは steps:start:キー）").fill("beauty-intro")
    page.get_by_role("button", name="作成してステップを追加").click()
    page.wait_for_url("**/steps/*")
    for name, kind, value, unit, body in STEPS:
        page.get_by_role("link", name="ステップを追加").click()
        page.wait_for_url("**/steps/new")
        page.get_by_label("ステップ名（スタッフ向け）").fill(name)
        page.locator("select[name=delay_kind]").select_option(kind)
        page.locator("input[name=delay_value]").fill(value)
        page.locator("select[name=delay_unit]").select_option(unit)
        page.locator("textarea[name=m0_text]").fill(body)
        page.locator("#preview .line-text").filter(has_text=body.split("{{")[0][:6] or "様").first.wait_for()
        page.get_by_role("button", name="ステップを保存").click()
        page.get_by_text("ステップを保存しました。").wait_for()
    assert page.locator(".step-item").count() == 3
    page.get_by_role("link", name="スマホでプレビュー").click()
    timeline = page.get_by_test_id("phone-timeline")
    timeline.get_by_text("山田 花子様、ご登録ありがとうございます").wait_for()
    assert timeline.get_by_test_id("timeline-step").count() == 3
    assert timeline.get_by_text(f"院長の{clinic_name}でのご紹介です").count() == 1
    assert timeline.locator(".phone-day").count() == 3  # three days: the start, a day later, three more
    page.screenshot(path="test-artifacts/steps-preview.png", full_page=True)
