"""A responder handles a chat in a real browser; an admin then finds the view and the send in the audit log."""

from __future__ import annotations

from tests.browser_fixtures import sign_in
from tests.factories import gen_user
from tests.inbox.support import friend_of, patient_writes
from tests.webhooks.support import connect_clinic


def test_responder_replies_with_the_reply_token_resolves_and_the_audit_log_shows_it(page, sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server, name="さくら内科")
    responder = gen_user("responder", clinic=clinic)
    admin = gen_user("admin", clinic=clinic)
    patient = patient_writes(sandbox, channel, "佐藤 花子", "明日の午前は空いていますか")
    friend = friend_of(clinic, patient)

    sign_in(page, responder, landing="**/c/**")
    page.get_by_role("link", name="チャット").first.click()
    page.wait_for_url(f"**/c/{clinic.slug}/inbox/")
    assert page.get_by_test_id(f"unread-{friend.id}").inner_text() == "1"
    page.get_by_test_id(f"conversation-{friend.id}").click()
    page.wait_for_url(f"**/inbox/{friend.id}")
    assert "明日の午前は空いていますか" in page.locator("#conversation").inner_text()
    plan = page.get_by_test_id("delivery-plan")
    assert "応答メッセージで送信（無料）" in plan.inner_text()

    page.locator("#composer-text").fill("マイナンバーは1234 5678 9012ですね")
    warning = page.get_by_test_id("composer-sensitive")
    warning.wait_for()
    assert "マイナンバー（12桁）" in warning.inner_text() and "要配慮個人情報" in warning.inner_text()
    page.locator("#composer-text").fill("はい、10時から空いています")
    warning.wait_for(state="detached")
    page.get_by_role("button", name="送信").click()
    page.get_by_text("メッセージを送信しました。").wait_for()
    assert "プッシュメッセージで送信（送信数にカウント）" in page.get_by_test_id("delivery-plan").inner_text()
    assert "停止中" in page.get_by_test_id("bot-state").inner_text()
    assert [(m["via"], m["message"]["text"]) for m in sandbox.inbox(channel, patient)] == [
        ("reply", "はい、10時から空いています")
    ]

    page.get_by_role("button", name="解決済みにする").click()
    page.get_by_text("ステータスを「解決済み」にしました。").wait_for()
    assert "解決済み" in page.get_by_test_id("conversation-status").inner_text()
    assert "有効" in page.get_by_test_id("bot-state").inner_text()

    page.get_by_role("button", name="ログアウト").click()
    page.wait_for_url("**/auth/login**")
    sign_in(page, admin, landing="**/c/**")
    page.goto(f"/c/{clinic.slug}/audit/")
    log = page.locator("table").inner_text()
    assert "チャットを閲覧" in log and "チャットでメッセージを送信" in log and responder.email in log
