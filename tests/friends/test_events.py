"""Webhook events change the friend list and the conversation (sandbox over real HTTP, RQ workers)."""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db
from saas.friends import consent, hooks
from saas.friends.models import Friend, Message
from saas.friends.services import following_counts
from saas.tenancy.scoping import tenant_scope
from saas.webhooks.jobs import handle_webhook_event
from saas.webhooks.models import WebhookEvent
from tests.webhooks.support import connect_clinic, run_jobs


def _friend(clinic, user_id: str) -> Friend:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return db.session.scalar(sa.select(Friend).where(Friend.line_user_id == user_id))


def _conversation(clinic, friend) -> list[tuple[str, str, str]]:
    with tenant_scope(clinic.id):
        rows = db.session.scalars(sa.select(Message).where(Message.friend_id == friend.id).order_by(Message.id))
        return [(m.direction, m.kind, m.text) for m in rows]


def test_a_follow_creates_the_friend_with_the_profile_from_line(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    patient = sandbox.add_patient(
        channel, "高橋 美咲", picture_url="https://profile.line-scdn.net/x.png", language="en"
    )
    sandbox.follow(channel, patient)
    run_jobs()
    friend = _friend(clinic, patient)
    assert friend.display_name == "高橋 美咲"
    assert friend.picture_url == "https://profile.line-scdn.net/x.png" and friend.language == "en"
    assert friend.status == "following" and friend.followed_at is not None and friend.blocked_at is None
    assert not friend.consent_marketing and friend.consent_booking  # marketing waits for a yes


def test_a_new_friend_is_greeted_with_the_reply_token(sandbox, live_server, first_responders):
    clinic, channel = connect_clinic(sandbox, live_server)
    greeting = [{"type": "text", "text": "友だち追加ありがとうございます！"}]
    first_responders(hooks._follow_responders, lambda clinic, friend, event: greeting)
    patient = sandbox.add_patient(channel, "伊藤 健")
    sandbox.follow(channel, patient)
    run_jobs()
    inbox = sandbox.inbox(channel, patient)
    assert [(m["via"], m["message"]["text"]) for m in inbox] == [
        ("reply", "友だち追加ありがとうございます！"),
        ("reply", consent.QUESTION),  # marketing consent, asked once
    ]
    friend = _friend(clinic, patient)
    assert _conversation(clinic, friend)[0] == ("out", "text", "友だち追加ありがとうございます！")


def test_an_unfollow_marks_the_friend_blocked_and_a_new_follow_reactivates(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "中村 さくら")
    sandbox.follow(channel, patient)
    run_jobs()
    sandbox.unfollow(channel, patient)
    run_jobs()
    friend = _friend(clinic, patient)
    assert friend.status == "blocked" and friend.blocked_at >= friend.followed_at
    sandbox.follow(channel, patient)
    run_jobs()
    assert _friend(clinic, patient).status == "following"
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(Friend.id))) == 1


def test_a_message_is_stored_in_the_conversation_and_the_answer_sent(sandbox, live_server, first_responders):
    clinic, channel = connect_clinic(sandbox, live_server)
    first_responders(hooks._message_responders, lambda clinic, friend, event: [{"type": "text", "text": "承りました"}])
    patient = sandbox.add_patient(channel, "小林 翔")
    sandbox.follow(channel, patient)
    sandbox.send_text(channel, patient, "明日の午前は空いていますか")
    run_jobs()
    friend = _friend(clinic, patient)
    assert ("in", "text", "明日の午前は空いていますか") in _conversation(clinic, friend)
    assert _conversation(clinic, friend)[-1] == ("out", "text", "承りました")
    assert friend.last_message_at is not None
    assert sandbox.inbox(channel, patient)[-1]["message"]["text"] == "承りました"


def test_a_message_from_a_friend_whose_follow_was_lost_adds_them_as_following_without_a_greeting(
    sandbox, live_server, first_responders
):
    clinic, channel = connect_clinic(sandbox, live_server)
    first_responders(hooks._follow_responders, lambda clinic, friend, event: [{"type": "text", "text": "ようこそ"}])
    patient = sandbox.add_patient(channel, "渡辺 光")
    sandbox.follow(channel, patient, deliver=False)  # the follow webhook never arrived (an outage)
    sandbox.send_text(channel, patient, "はじめまして")
    run_jobs()
    friend = _friend(clinic, patient)
    assert friend.display_name == "渡辺 光"
    assert friend.status == "following" and friend.followed_at is not None
    assert following_counts([clinic.id]) == {clinic.id: 1}
    assert ("in", "text", "はじめまして") in _conversation(clinic, friend)
    assert all(m["message"].get("text") != "ようこそ" for m in sandbox.inbox(channel, patient))


def test_a_message_from_someone_who_never_added_the_account_is_kept_but_not_counted_as_a_friend(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    stranger = sandbox.add_patient(channel, "未登録 さん")  # LINE answers 404 for their profile
    sandbox.send_text(channel, stranger, "予約できますか")
    run_jobs()
    friend = _friend(clinic, stranger)
    assert friend.status != "following" and friend.followed_at is None
    assert following_counts([clinic.id]) == {}  # 友だち on the dashboard, and every broadcast's audience
    assert ("in", "text", "予約できますか") in _conversation(clinic, friend)  # staff still see it

    sandbox.follow(channel, stranger)  # adding the account later makes them a friend as usual
    run_jobs()
    assert _friend(clinic, stranger).status == "following"
    assert following_counts([clinic.id]) == {clinic.id: 1}


def test_a_postback_is_stored_and_dispatched_to_its_registered_handler(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    seen = []

    @hooks.register_postback_handler("test-menu:")
    def on_menu(clinic, friend, event):
        seen.append((friend.line_user_id, event["postback"]["data"]))
        return [{"type": "text", "text": "診療時間は9時〜18時です"}]

    patient = sandbox.add_patient(channel, "加藤 葵")
    sandbox.follow(channel, patient)
    sandbox.postback(channel, patient, "test-menu:hours")
    run_jobs()
    assert seen == [(patient, "test-menu:hours")]
    friend = _friend(clinic, patient)
    assert ("in", "postback", "test-menu:hours") in _conversation(clinic, friend)
    assert sandbox.inbox(channel, patient)[-1]["message"]["text"] == "診療時間は9時〜18時です"


def test_the_longest_registered_postback_prefix_wins():
    hooks.register_postback_handler("zz-test:")(lambda *a: "short")
    hooks.register_postback_handler("zz-test:booking:")(lambda *a: "long")
    assert hooks.postback_handler_for("zz-test:booking:42")() == "long"
    assert hooks.postback_handler_for("zz-test:other")() == "short"
    assert hooks.postback_handler_for("nothing") is None


def test_handling_an_event_twice_changes_nothing_and_replies_once(sandbox, live_server, first_responders):
    clinic, channel = connect_clinic(sandbox, live_server)
    first_responders(hooks._message_responders, lambda clinic, friend, event: [{"type": "text", "text": "一度だけ"}])
    patient = sandbox.add_patient(channel, "山本 蓮")
    sandbox.follow(channel, patient, deliver=False)
    sandbox.send_text(channel, patient, "テスト")
    run_jobs()
    with tenant_scope(clinic.id):
        event_id = db.session.scalar(sa.select(WebhookEvent.id))
        db.session.execute(sa.update(WebhookEvent).values(state="failed"))  # as if the job were retried
        db.session.commit()
    assert handle_webhook_event(event_id, clinic.id) == "handled"
    assert handle_webhook_event(event_id, clinic.id) == "skipped"
    friend = _friend(clinic, patient)
    assert _conversation(clinic, friend) == [("in", "text", "テスト"), ("out", "text", "一度だけ")]
    assert len(sandbox.inbox(channel, patient)) == 1


def test_the_newest_reply_token_is_kept_with_its_expiry(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "森 大輔")
    delivered = sandbox.send_text(channel, patient, "質問です")
    run_jobs()
    friend = _friend(clinic, patient)
    # Either the token is still unused (kept for the chat inbox) or an auto-reply used it up.
    if friend.reply_token:
        assert friend.reply_token == delivered["event"]["replyToken"]
        assert friend.usable_reply_token == friend.reply_token
