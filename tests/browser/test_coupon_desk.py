"""A coupon in real browsers: the patient sees it on the phone simulator, opens their code through
LINE Login, and the reception tablet redeems it once, refusing the second try with the reason."""

from __future__ import annotations

import re

import pytest

from saas.coupons import services
from saas.extensions import db
from saas.tenancy.scoping import tenant_scope
from tests.coupons.support import coupon_clinic, running_coupon
from tests.delivery.support import drain
from tests.factories import PASSWORD, gen_user

pytestmark = pytest.mark.browser
TABLET = {"width": 820, "height": 1180}  # an iPad Air held upright at the desk


def _send(clinic, coupon) -> None:
    from saas.coupons.models import Coupon

    with tenant_scope(clinic.id):
        services.send(db.session.get(Coupon, coupon.id))
    drain()


def test_the_patient_shows_the_code_and_the_desk_redeems_it_once(browser, sandbox, live_server):
    clinic, channel, patients = coupon_clinic(sandbox, live_server, friends=1, name="つなぐ美容皮膚科")
    coupon = running_coupon(clinic, title="しみ取り 初回20%オフ")
    _send(clinic, coupon)

    phone = browser.new_context(base_url=live_server.url, locale="ja-JP", viewport={"width": 390, "height": 844})
    simulator = phone.new_page()
    simulator.goto(f"{sandbox.url}/_sandbox/phone")
    simulator.locator("#channel").select_option(channel)
    simulator.get_by_test_id("coupon").get_by_text("✂ しみ取り 初回20%オフ").wait_for()
    link = sandbox.inbox(channel, patients[0])[-1]["message"]["template"]["actions"][0]["uri"]
    mine = phone.new_page()
    mine.goto(link)
    mine.wait_for_url(re.compile(r".*/oauth2/v2\.1/authorize.*"))
    mine.get_by_role("button", name="許可する").click()
    mine.get_by_test_id("coupon-state").get_by_text("使えます").wait_for()
    code = mine.get_by_test_id("coupon-code").inner_text()
    assert re.fullmatch(r"[A-Z0-9]{4}-[A-Z0-9]{4}", code)
    assert mine.locator(".coupon-qr svg").is_visible()

    staff = gen_user("sender", clinic=clinic)
    tablet = browser.new_context(base_url=live_server.url, locale="ja-JP", viewport=TABLET).new_page()
    tablet.goto("/auth/login")
    tablet.get_by_label("メールアドレス").fill(staff.email)
    tablet.get_by_label("パスワード").fill(PASSWORD)
    tablet.get_by_role("button", name="ログイン").click()
    tablet.wait_for_url("**/c/**")
    with tablet.expect_response(re.compile(r".*/coupons/desk$")) as opened:
        tablet.get_by_role("link", name="クーポン受付").first.click()
    assert "camera=(self)" in opened.value.headers["permissions-policy"]
    tablet.get_by_role("button", name="カメラで読み取る").wait_for(
        state="visible"
    )  # desk.js: jsQR where no BarcodeDetector
    assert tablet.locator("#code").bounding_box()["y"] < tablet.locator(".sidebar").bounding_box()["y"]  # desk first
    tablet.get_by_label("クーポンコード（8文字）").fill(code.lower())
    with tablet.expect_navigation():  # each redemption is a page of its own (works without JavaScript)
        tablet.get_by_role("button", name="利用する").click()
    result = tablet.get_by_test_id("desk-result")
    assert "利用しました" in result.inner_text() and "しみ取り 初回20%オフ" in result.inner_text()
    tablet.wait_for_function("document.activeElement && document.activeElement.id === 'code'")  # next patient

    tablet.get_by_label("クーポンコード（8文字）").fill(code)
    with tablet.expect_navigation():
        tablet.get_by_role("button", name="利用する").click()
    assert "利用できません" in result.inner_text()
    assert tablet.get_by_test_id("desk-reason").inner_text() == "このクーポンは使用済みです（1回まで）。"

    mine.reload()
    mine.get_by_test_id("coupon-state").get_by_text("使用済み").wait_for()
    tablet.goto(f"/c/{clinic.slug}/coupons/")
    assert tablet.get_by_test_id("coupon-row").get_by_test_id("used").inner_text() == "1"
    assert tablet.locator("#coupon-chart").is_visible()
    phone.close()
