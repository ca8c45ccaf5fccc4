"""A newcomer's first tour of the demo, in Chromium, on ``flask dev`` — the configuration ``make start`` runs.

Staff sign-in with TOTP enrolment on the QR page, the clinic switcher, a patient in the phone
simulator (follow → greeting → 「駐車場」 → answer), booking through the sandbox's LINE Login,
and a broadcast from the portal arriving in the phone.
"""

from __future__ import annotations

import re

import pyotp
import pytest

from saas.demo import DEMO_PASSWORD
from tests.browser_fixtures import ARTIFACTS
from tests.dev_server import DevServer

pytestmark = pytest.mark.browser

PATIENT = "ツアー 太郎"
TIMEOUT_MS = 60_000  # the phone simulator polls every two seconds; the machine may be busy


@pytest.fixture(scope="module")
def demo(browser, tmp_path_factory):
    """``flask dev`` on free ports with its own instance directory, stopped after the tour."""
    server = DevServer(tmp_path_factory.mktemp("demo"))
    yield server
    assert server.stop() == 0


@pytest.fixture
def context(browser, request):
    context = browser.new_context(locale="ja-JP", viewport={"width": 1360, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    yield context
    if getattr(request.node, "rep_call", None) and request.node.rep_call.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        for index, page in enumerate(context.pages):
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{index}.png"), full_page=True)
    context.close()


def _sign_in_enrolling_totp(page, portal: str, email: str) -> None:
    page.goto(f"{portal}/auth/login")
    page.get_by_label("メールアドレス").fill(email)
    page.get_by_label("パスワード").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/auth/two-factor/enrol")
    assert page.locator("img[alt='二要素認証用QRコード']").is_visible()
    secret = re.sub(r"\s", "", page.get_by_test_id("totp-secret").inner_text())
    page.get_by_label("確認コード（6桁）").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="設定を完了する").click()
    landing = page.locator("[data-testid=recovery-codes], [data-clinic]").first
    landing.wait_for()
    if page.get_by_test_id("recovery-codes").count():  # enrolment may show recovery codes before the portal
        page.get_by_role("link", name=re.compile("続ける")).click()
        page.locator("[data-clinic]").first.wait_for()


def _switch_clinics(page) -> None:
    page.locator("[data-clinic='sakura-shibuya']").click()
    page.wait_for_url("**/c/sakura-shibuya/")
    page.select_option("#clinic-switcher", "sakura-shinjuku")
    page.wait_for_url("**/c/sakura-shinjuku/")
    assert page.get_by_role("heading", name="さくら内科クリニック 新宿院").is_visible()
    page.select_option("#clinic-switcher", "sakura-shibuya")
    page.wait_for_url("**/c/sakura-shibuya/")


def _open_phone_as_new_patient(page, sandbox: str):
    page.goto(f"{sandbox}/_sandbox/phone")
    option = page.locator("#channel option", has_text="さくら内科クリニック 渋谷院")
    option.wait_for(state="attached")
    page.select_option("#channel", option.get_attribute("value"))
    page.get_by_label("新しい患者を作成").fill(PATIENT)
    page.get_by_role("button", name="患者を作成").click()
    page.locator("#patient option", has_text=PATIENT).wait_for(state="attached")
    return page.locator("#chat")


def _book_from_the_rich_menu(context, phone) -> str:
    with context.expect_page() as opened:
        phone.locator("#menu .area[title='予約']").click()
    booking = opened.value
    booking.wait_for_url(re.compile(r".*/oauth2/v2\.1/authorize.*"))  # the sandbox's LINE Login
    booking.get_by_label(PATIENT).check()
    booking.get_by_role("button", name="許可する").click()
    booking.wait_for_url(re.compile(r".*/book/sakura-shibuya/.*"))
    booking.get_by_test_id("slot").first.click()
    chosen = booking.get_by_test_id("confirm-when").inner_text()
    booking.get_by_role("button", name="予約を確定する").click()
    assert booking.get_by_test_id("booking-done").get_by_text("ご予約が確定しました").is_visible()
    return chosen


def _broadcast(page, portal: str, text: str) -> None:
    page.goto(f"{portal}/c/sakura-shibuya/deliveries/new")
    page.get_by_label("本文（テキスト）").fill(text)
    page.get_by_role("radio", name="友だち全員").check()
    page.get_by_role("button", name="配信する").click()
    page.wait_for_url(re.compile(r".*/c/sakura-shibuya/deliveries/\d+"))


def test_a_newcomer_tours_the_demo_from_sign_in_to_a_broadcast_in_the_phone(demo, context):
    portal = context.new_page()
    _sign_in_enrolling_totp(portal, demo.portal_url, "platform@tsunagu.example")
    _switch_clinics(portal)

    phone = context.new_page()
    chat = _open_phone_as_new_patient(phone, demo.sandbox_url)
    phone.get_by_role("button", name="友だち追加").click()
    chat.locator(
        ".bubble", has_text=f"{PATIENT}さま、さくら内科クリニック 渋谷院です。友だち追加ありがとうございます"
    ).wait_for()
    # The greeting asks for marketing consent; the broadcast at the end of the tour needs the yes.
    phone.locator("#chips").get_by_role("button", name="お知らせを受け取る").click()
    chat.locator(".bubble", has_text="「受け取る」に設定しました").wait_for()
    phone.get_by_placeholder("メッセージを入力").fill("駐車場")
    phone.get_by_role("button", name="送信").click()
    chat.locator(".bubble", has_text="近隣のコインパーキング").wait_for()  # the clinic's parking answer

    chosen = _book_from_the_rich_menu(context, phone)
    confirmation = chat.locator(".bubble", has_text="ご予約が確定しました").first
    confirmation.wait_for()
    assert chosen.split(" ")[1][:5] in confirmation.inner_text()

    _broadcast(portal, demo.portal_url, "ツアーのお知らせ：年末年始の診療時間")
    chat.locator(".bubble", has_text="ツアーのお知らせ：年末年始の診療時間").wait_for()
