"""In Chromium, from nothing: an agency operator signs in, creates a clinic, connects its LINE channel
(the sandbox's), loads a starter manifest after its dry-run diff, sets the hours and invites a
receptionist inside the wizard — and a patient who adds the clinic as a friend in the sandbox phone
receives the clinic's greeting. (The issue's "Done means" for onboarding.)"""

from __future__ import annotations

import re
import secrets

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.members.models import Invitation
from saas.schedule.models import WeeklyBlock
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import tenant_scope
from tests.browser_fixtures import sign_in
from tests.delivery.support import drain
from tests.factories import gen_agency, gen_organization, gen_user

pytestmark = pytest.mark.browser
CHANNEL, SECRET, NAME = "2009000001", "f" * 32, "みらい皮膚科 恵比寿院"
TIMEOUT_MS = 60_000  # the phone simulator polls every two seconds; the machine may be busy


def _create_clinic(page) -> None:
    page.get_by_role("link", name="クリニックの導入").click()
    page.wait_for_url("**/onboarding/new")
    page.get_by_label("院名").fill(NAME)
    page.get_by_label("URL名（半角英小文字・数字・ハイフン）").fill("mirai-ebisu")
    page.get_by_role("button", name="作成して次へ").click()
    page.wait_for_url("**/c/mirai-ebisu/onboarding")


def _connect_line(page, token: str) -> None:
    page.locator("#wizard-line").get_by_role("link", name="LINE公式アカウントを連携する").click()
    page.wait_for_url("**/c/mirai-ebisu/settings/line")
    page.get_by_label("チャネルID").fill(CHANNEL)
    page.get_by_label("チャネルシークレット").fill(SECRET)
    page.get_by_label("チャネルアクセストークン（長期）").fill(token)
    page.get_by_role("button", name="検証して連携する").click()
    page.locator("#check-result.ok").wait_for()
    assert page.locator(".connection-state").get_attribute("data-state") == "connected"


def _load_starter(page) -> None:
    page.goto("/c/mirai-ebisu/onboarding")
    page.locator("#wizard-manifest").get_by_role("link", name="初期設定をテンプレートから読み込む").click()
    page.wait_for_url("**/onboarding/manifest")
    page.get_by_label("内科クリニック（標準）").check()
    page.get_by_role("button", name="変更内容を確認").click()
    dry_run = page.locator("#dry-run")
    dry_run.get_by_text("autoreply.greeting_messages を更新").wait_for()
    assert "まだ適用していません" in dry_run.inner_text()
    page.get_by_role("button", name="適用する").click()
    page.wait_for_url("**/c/mirai-ebisu/onboarding")


def _hours_and_staff(page) -> None:
    hours = page.locator("#wizard-schedule")
    hours.locator("input[name=d5_1_label]").fill("午後")
    hours.locator("input[name=d5_1_start]").fill("14:00")
    hours.locator("input[name=d5_1_end]").fill("17:00")
    hours.get_by_role("button", name="診療時間を保存").click()
    page.wait_for_url("**/onboarding#wizard-schedule")
    page.locator(".flash, [role=status], .callout").get_by_text("診療時間を保存しました").first.wait_for()

    staff = page.locator("#wizard-staff")
    staff.get_by_label("メールアドレス").fill("uketsuke@mirai.example")
    staff.get_by_label("権限").select_option("responder")
    staff.get_by_role("button", name="招待する").click()
    link = page.get_by_label("招待リンク")
    link.wait_for()
    assert "/invitations/" in link.input_value()


def _follow_in_the_phone(browser, sandbox_url: str) -> object:
    phone = browser.new_context(locale="ja-JP", viewport={"width": 390, "height": 844}).new_page()
    phone.goto(f"{sandbox_url}/_sandbox/phone")
    option = phone.locator("#channel option", has_text=NAME)
    option.wait_for(state="attached")
    phone.select_option("#channel", option.get_attribute("value"))
    phone.get_by_label("新しい患者を作成").fill("新規 患者")
    phone.get_by_role("button", name="患者を作成").click()
    phone.locator("#patient option", has_text="新規 患者").wait_for(state="attached")
    phone.get_by_role("button", name="友だち追加").click()
    phone.locator("#status", has_text="友だち追加しました").wait_for()
    return phone


def test_an_operator_onboards_a_clinic_from_nothing_to_a_patient_receiving_its_greeting(
    page, browser, sandbox, live_server
):
    agency = gen_agency("みらいメディカルサポート")
    gen_organization(agency, name="医療法人社団みらい会")
    operator = gen_user("admin", agency=agency)
    token = "tok-" + secrets.token_hex(16)
    sandbox.add_channel(CHANNEL, SECRET, token, plan="standard", display_name=NAME)

    sign_in(page, operator, landing=re.compile(r".*/$"))
    _create_clinic(page)
    _connect_line(page, token)
    _load_starter(page)
    _hours_and_staff(page)

    phone = _follow_in_the_phone(browser, sandbox.url)
    drain()  # the follow webhook is handled by an RQ worker (in-process, burst)
    greeting = phone.locator("#chat .bubble", has_text=f"{NAME}です。友だち追加ありがとうございます")
    greeting.wait_for(timeout=TIMEOUT_MS)

    page.goto("/c/mirai-ebisu/onboarding")
    for step in ("line", "greeting", "schedule", "faq", "staff"):
        assert page.locator(f"#go-live [data-step={step}]").get_attribute("data-done") == "yes", step
    with tenant_scope(db.session.scalar(sa.select(Clinic.id).where(Clinic.slug == "mirai-ebisu"))):
        saturday = db.session.scalars(sa.select(WeeklyBlock).where(WeeklyBlock.weekday == 5)).all()
        assert ("14:00", "17:00") in {(b.start, b.end) for b in saturday}
        assert db.session.scalars(sa.select(Invitation.role)).all() == ["responder"]
    phone.context.close()
