"""The inbox as a receptionist reads it: who wrote each message, and what is waiting for a person."""

from __future__ import annotations

from saas.autoreply import services as autoreply
from saas.extensions import db
from saas.tenancy.scoping import tenant_scope
from tests.inbox.support import friend_of, patient_writes, post, setup_chat
from tests.webhooks.support import run_jobs


def test_bot_and_staff_replies_are_labelled_and_greeting_only_friends_are_not_waiting(client, sandbox, live_server):
    clinic, channel, user = setup_chat(sandbox, live_server, client)
    asking = patient_writes(sandbox, channel, "佐藤 健太", "スタッフと話したい")
    friend = friend_of(clinic, asking)
    post(client, f"/c/{clinic.slug}/inbox/{friend.id}/send", {"text": "受付の者です。ご用件をどうぞ。"})

    page = client.get(f"/c/{clinic.slug}/inbox/{friend.id}").get_data(as_text=True).split('id="conversation"', 1)[1]
    assert "⚙ 自動応答" in page, "the bot's hand-off answer is labelled as the bot"
    assert user.name in page.split("受付の者です。ご用件をどうぞ。", 1)[1][:600], "a staff reply shows who sent it"


def test_a_friend_who_only_received_the_greeting_is_not_marked_unanswered(client, sandbox, live_server):
    clinic, channel, _user = setup_chat(sandbox, live_server, client)
    with tenant_scope(clinic.id):
        autoreply.get_settings(clinic.id).greeting_messages = [
            {"type": "text", "text": "友だち追加ありがとうございます"}
        ]
        db.session.commit()
    greeted = sandbox.add_patient(channel, "田中 さくら")
    sandbox.follow(channel, greeted)
    run_jobs()
    friend = friend_of(clinic, greeted)
    listing = client.get(f"/c/{clinic.slug}/inbox/").get_data(as_text=True)
    row = listing.split(f'data-testid="conversation-{friend.id}"', 1)[1][:1500]
    assert "患者さんからのメッセージなし" in row and "未対応" not in row
