"""In Chromium: the composer shows a 医療広告 finding live under the text with the phrase highlighted,
then a send over the clinic's threshold waits for a second staff member, who approves it on the
page that shows the count and the messages, and the patients receive it through the sandbox."""

from __future__ import annotations

import pytest

from saas.extensions import db
from saas.sendguard.guard import settings_for
from saas.tenancy.scoping import tenant_scope
from tests.browser_fixtures import sign_in
from tests.delivery.support import add_friends, connected_clinic, drain
from tests.factories import gen_user

pytestmark = pytest.mark.browser
CHANNEL = "1750000001"


def _sign_out(page) -> None:
    page.context.clear_cookies()


def test_a_live_finding_in_the_composer_and_a_second_staff_member_approves_the_send(page, sandbox):
    clinic = connected_clinic(sandbox, CHANNEL, name="さくら内科")
    friends = add_friends(sandbox, clinic, 3)
    with tenant_scope(clinic.id):
        settings_for(clinic.id).approval_threshold = 2
        db.session.commit()
    submitter, approver = gen_user("sender", clinic=clinic), gen_user("sender", clinic=clinic)

    sign_in(page, submitter, two_factor=False)
    page.wait_for_url(f"**/c/{clinic.slug}/")
    page.get_by_role("link", name="メッセージ作成").click()
    text = page.locator("textarea[name=m0_text]")
    text.fill("当院は地域ＮＯ．１のクリニックです")
    finding = page.locator(".adcheck-finding[data-rule=superlative]")
    finding.wait_for()
    assert finding.locator("mark").inner_text() == "地域ＮＯ．１"
    assert "要承認" in finding.inner_text() and "比較優良広告" in finding.inner_text()
    page.screenshot(path="test-artifacts/adcheck-live-finding.png", full_page=True)
    text.fill("ご来院の方にプレゼントがあります。明日は休診です")
    page.locator(".adcheck-finding[data-rule=free_gift]").wait_for()
    assert page.locator(".adcheck-finding[data-rule=superlative]").count() == 0

    page.get_by_role("button", name="配信へ進む").click()
    page.wait_for_url("**/deliveries/new?draft=*")
    page.locator("[data-testid=approval-notice]").wait_for()  # 3 friends > the threshold of 2
    page.get_by_role("button", name="配信する").click()
    page.get_by_test_id("adcheck-gate").wait_for()  # the warning must be acknowledged first
    page.get_by_label("「注意」の内容を確認し、このまま使います（記録されます）").check()
    page.get_by_role("button", name="配信する").click()
    page.wait_for_url("**/approvals/*")
    assert page.get_by_test_id("approval-state").get_attribute("data-state") == "pending"
    drain()
    assert not sandbox.inbox(CHANNEL, friends[0])

    _sign_out(page)
    sign_in(page, approver, two_factor=False)
    page.wait_for_url(f"**/c/{clinic.slug}/")
    page.get_by_role("link", name="配信の承認").click()
    page.get_by_role("link", name="ご来院の方にプレゼントがあります。明日は休診です").click()
    assert page.get_by_test_id("audience-count").inner_text() == "3"
    assert "明日は休診です" in page.locator(".delivery-side").inner_text()
    page.screenshot(path="test-artifacts/adcheck-approval.png", full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())  # 「3 人に送信します。よろしいですか？」
    page.get_by_test_id("approve").click()
    page.wait_for_url("**/deliveries/*")
    drain()
    assert [sandbox.inbox(CHANNEL, f)[-1]["message"]["text"] for f in friends] == [
        "ご来院の方にプレゼントがあります。明日は休診です"
    ] * 3
