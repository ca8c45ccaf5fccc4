"""The chat inbox against the LINE sandbox over real HTTP: unread counts, assignment, status and
the bot pause, replies by reply token or push, audit of every view, and tenant isolation."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.autoreply.models import AutoReplyRule
from saas.common import utcnow
from saas.extensions import db
from saas.friends.models import Friend
from saas.inbox.models import ChatSend, Conversation
from saas.quota.usage import usage
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_user
from tests.helpers import assert_rows_isolated, login
from tests.inbox.support import friend_of, patient_writes, post, setup_chat, texts_of
from tests.webhooks.support import connect_clinic


def _audit(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def _hours_rule(clinic) -> None:
    with tenant_scope(clinic.id):
        db.session.add(
            AutoReplyRule(
                name="診療時間", keywords=["診療時間"], messages=[{"type": "text", "text": "9時から18時です"}]
            )
        )
        db.session.commit()


def test_the_inbox_lists_conversations_newest_first_with_unread_counts(sandbox, live_server, client):
    clinic, channel, _ = setup_chat(sandbox, live_server, client)
    first = friend_of(clinic, patient_writes(sandbox, channel, "佐藤 花子", "こんにちは", "予約したいです"))
    second = friend_of(clinic, patient_writes(sandbox, channel, "田中 一郎", "薬について"))
    page = client.get(f"/c/{clinic.slug}/inbox/").get_data(as_text=True)
    assert page.index("田中 一郎") < page.index("佐藤 花子")
    assert f'data-testid="unread-{first.id}"' in page and f'data-testid="unread-{second.id}"' in page
    assert ">2</span>" in page.split(f'data-testid="unread-{first.id}"')[1][:80]
    assert 'data-testid="nav-badge-inbox.index">2<' in page
    client.get(f"/c/{clinic.slug}/inbox/{first.id}")
    page = client.get(f"/c/{clinic.slug}/inbox/").get_data(as_text=True)
    assert f'data-testid="unread-{first.id}"' not in page and f'data-testid="unread-{second.id}"' in page
    assert 'data-testid="nav-badge-inbox.index">1<' in page
    dashboard = client.get(f"/c/{clinic.slug}/").get_data(as_text=True)
    assert "未対応チャット" in dashboard


def test_every_opening_of_a_conversation_is_audited(sandbox, live_server, client):
    clinic, channel, user = setup_chat(sandbox, live_server, client)
    friend = friend_of(clinic, patient_writes(sandbox, channel, "鈴木 次郎", "質問です"))
    for _ in range(3):
        assert client.get(f"/c/{clinic.slug}/inbox/{friend.id}").status_code == 200
    views = [e for e in _audit("conversation.view") if e.target_type == "friend"]
    assert len(views) == 3
    assert {(e.clinic_id, e.actor_user_id, e.target_id) for e in views} == {(clinic.id, user.id, str(friend.id))}


def test_new_messages_arrive_in_an_open_conversation_and_their_showing_is_audited(sandbox, live_server, client):
    clinic, channel, _ = setup_chat(sandbox, live_server, client)
    user_id = patient_writes(sandbox, channel, "山田 太郎", "一通目")
    friend = friend_of(clinic, user_id)
    page = client.get(f"/c/{clinic.slug}/inbox/{friend.id}").get_data(as_text=True)
    after = int(page.split("after=")[1].split('"')[0])
    assert (
        client.get(f"/c/{clinic.slug}/inbox/{friend.id}/messages?after={after}")
        .get_data(as_text=True)
        .count("bubble-row")
        == 0
    )
    patient_writes(sandbox, channel, "", "二通目", user_id=user_id)
    fresh = client.get(f"/c/{clinic.slug}/inbox/{friend.id}/messages?after={after}").get_data(as_text=True)
    assert "二通目" in fresh and "一通目" not in fresh
    assert [e.details for e in _audit("conversation.view") if e.target_type == "friend"] == [{}, {"live": 1}]


def test_assignment_filters_and_status_transitions_pause_and_resume_the_bot(sandbox, live_server, client):
    clinic, channel, user = setup_chat(sandbox, live_server, client)
    _hours_rule(clinic)
    patient = patient_writes(sandbox, channel, "高橋 美咲", "診療時間を教えて")
    assert [m["via"] for m in sandbox.inbox(channel, patient)] == ["reply"]  # the bot answers
    friend = friend_of(clinic, patient)
    assert f"conversation-{friend.id}" in client.get(f"/c/{clinic.slug}/inbox/?unassigned=1").get_data(as_text=True)

    post(client, f"/c/{clinic.slug}/inbox/{friend.id}/assign", {"user_id": "me"})
    assert f"conversation-{friend.id}" in client.get(f"/c/{clinic.slug}/inbox/?mine=1").get_data(as_text=True)
    assert f"conversation-{friend.id}" not in client.get(f"/c/{clinic.slug}/inbox/?unassigned=1").get_data(as_text=True)
    assert "停止中" in client.get(f"/c/{clinic.slug}/inbox/{friend.id}").get_data(as_text=True)

    patient_writes(sandbox, channel, "", "診療時間は何時まで？", user_id=patient)
    assert len(sandbox.inbox(channel, patient)) == 1, "no auto-reply while a person handles the chat"

    post(client, f"/c/{clinic.slug}/inbox/{friend.id}/status", {"status": "waiting"})
    assert "返信待ち" in client.get(f"/c/{clinic.slug}/inbox/?status=waiting").get_data(as_text=True)
    patient_writes(sandbox, channel, "", "まだですか", user_id=patient)
    assert f"conversation-{friend.id}" in client.get(f"/c/{clinic.slug}/inbox/?status=open").get_data(as_text=True)

    post(client, f"/c/{clinic.slug}/inbox/{friend.id}/status", {"status": "resolved"})
    assert f"conversation-{friend.id}" not in client.get(f"/c/{clinic.slug}/inbox/").get_data(as_text=True)
    assert f"conversation-{friend.id}" in client.get(f"/c/{clinic.slug}/inbox/?status=resolved").get_data(as_text=True)
    patient_writes(sandbox, channel, "", "診療時間をもう一度", user_id=patient)
    assert [m["message"]["text"] for m in sandbox.inbox(channel, patient)] == ["9時から18時です"] * 2
    assert [e.details["status"] for e in _audit("conversation.status")] == ["waiting", "resolved"]
    assert len(_audit("conversation.assign")) == 1


def test_a_reply_uses_the_free_reply_token_while_it_is_valid(sandbox, live_server, client):
    clinic, channel, user = setup_chat(sandbox, live_server, client)
    patient = patient_writes(sandbox, channel, "伊藤 健", "駐車場はありますか")
    friend = friend_of(clinic, patient)
    page = client.get(f"/c/{clinic.slug}/inbox/{friend.id}").get_data(as_text=True)
    assert "応答メッセージで送信（無料）" in page
    response = post(client, f"/c/{clinic.slug}/inbox/{friend.id}/send", {"text": "はい、5台あります", "via": "reply"})
    assert response.status_code == 302
    assert [(m["via"], m["message"]["text"]) for m in sandbox.inbox(channel, patient)] == [
        ("reply", "はい、5台あります")
    ]
    assert friend_of(clinic, patient).reply_token is None, "the token is used up"
    assert texts_of(clinic, friend.id)[-1] == ("out", "はい、5台あります")
    with tenant_scope(clinic.id):
        assert usage(clinic.id).used == 0
        send = db.session.scalar(sa.select(ChatSend))
        assert (send.via, send.state, send.sender_user_id) == ("reply", "sent", user.id)
        conversation = db.session.scalar(sa.select(Conversation))
        assert (conversation.status, conversation.assignee_user_id) == ("waiting", user.id)
    assert _audit("message.send")[-1].details["via"] == "reply"
    page = client.get(f"/c/{clinic.slug}/inbox/{friend.id}").get_data(as_text=True)
    assert "プッシュメッセージで送信（送信数にカウント）" in page and "停止中" in page


def _expire_token(clinic, patient: str) -> Friend:
    with tenant_scope(clinic.id):
        friend = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == patient))
        friend.reply_token_expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
        db.session.refresh(friend)
        db.session.expunge(friend)
        return friend


def test_after_the_token_expires_the_reply_is_a_push_counted_against_the_quota(sandbox, live_server, client):
    clinic, channel, _ = setup_chat(sandbox, live_server, client)
    patient = patient_writes(sandbox, channel, "中村 さくら", "予約の変更をお願いします")
    friend = _expire_token(clinic, patient)
    with tenant_scope(clinic.id):
        remaining = usage(clinic.id).remaining
    page = client.get(f"/c/{clinic.slug}/inbox/{friend.id}").get_data(as_text=True)
    assert "プッシュメッセージで送信（送信数にカウント）" in page
    assert f"今月の残り送信数: {remaining:,}通" in page
    post(client, f"/c/{clinic.slug}/inbox/{friend.id}/send", {"text": "変更を承りました", "via": "push"})
    assert [(m["via"], m["message"]["text"]) for m in sandbox.inbox(channel, patient)] == [("push", "変更を承りました")]
    pushes = [r for r in sandbox.requests(channel) if r["path"].endswith("/message/push")]
    assert len(pushes) == 1 and pushes[0]["retry_key"]
    with tenant_scope(clinic.id):
        assert usage(clinic.id).used == 1
        assert db.session.scalar(sa.select(ChatSend.retry_key)) == pushes[0]["retry_key"]
    sent = _audit("message.send")[-1]
    assert sent.details["via"] == "push" and sent.details["retry_key"] == pushes[0]["retry_key"]


def test_a_promised_free_reply_is_never_sent_as_a_push_without_asking(sandbox, live_server, client):
    clinic, channel, _ = setup_chat(sandbox, live_server, client)
    patient = patient_writes(sandbox, channel, "小林 翔", "質問です")
    friend = _expire_token(clinic, patient)
    response = post(client, f"/c/{clinic.slug}/inbox/{friend.id}/send", {"text": "お答えします", "via": "reply"})
    assert response.status_code == 409 and "もう一度送信するとプッシュ" in response.get_data(as_text=True)
    assert sandbox.inbox(channel, patient) == [] and _audit("message.send") == []


def test_sensitive_data_is_flagged_on_incoming_and_confirmed_before_outgoing(sandbox, live_server, client):
    clinic, channel, _ = setup_chat(sandbox, live_server, client)
    patient = patient_writes(sandbox, channel, "加藤 葵", "マイナンバーは1234 5678 9012です")
    friend = friend_of(clinic, patient)
    page = client.get(f"/c/{clinic.slug}/inbox/{friend.id}").get_data(as_text=True)
    assert 'data-testid="sensitive-badge"' in page and "マイナンバー（12桁）" in page

    url = f"/c/{clinic.slug}/inbox/{friend.id}/send"
    refused = post(client, url, {"text": "生年月日は1980年4月1日でよろしいですか", "via": "reply"})
    body = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'data-testid="composer-sensitive"' in body
    assert "要配慮個人情報をできるだけ含めないでください" in body and 'name="confirm_sensitive"' in body
    assert sandbox.inbox(channel, patient) == []
    post(client, url, {"text": "生年月日は1980年4月1日でよろしいですか", "via": "reply", "confirm_sensitive": "1"})
    assert [m["message"]["text"] for m in sandbox.inbox(channel, patient)] == ["生年月日は1980年4月1日でよろしいですか"]
    page = client.get(f"/c/{clinic.slug}/inbox/{friend.id}").get_data(as_text=True)
    assert page.count('data-testid="sensitive-badge"') == 2

    warning = post(client, f"/c/{clinic.slug}/inbox/{friend.id}/check", {"text": "糖尿病の薬"})
    assert "病名・診療内容" in warning.get_data(as_text=True)
    assert post(client, f"/c/{clinic.slug}/inbox/{friend.id}/check", {"text": "明日伺います"}).data.strip() == b""


def test_canned_replies_come_from_the_clinic_rules(sandbox, live_server, client):
    clinic, channel, _ = setup_chat(sandbox, live_server, client)
    _hours_rule(clinic)
    friend = friend_of(clinic, patient_writes(sandbox, channel, "森 大輔", "こんにちは"))
    page = client.get(f"/c/{clinic.slug}/inbox/{friend.id}").get_data(as_text=True)
    assert "定型文・FAQから挿入" in page and "診療時間" in page
    filled = client.get(f"/c/{clinic.slug}/inbox/{friend.id}/canned/0").get_data(as_text=True)
    assert "9時から18時です" in filled and "<textarea" in filled


def test_a_responder_of_another_clinic_gets_404_and_rows_stay_isolated(sandbox, live_server, client):
    clinic_a, channel_a, user_a = setup_chat(sandbox, live_server, client)
    clinic_b, channel_b = connect_clinic(sandbox, live_server, name="別院")
    friend_a = friend_of(clinic_a, patient_writes(sandbox, channel_a, "A患者", "こんにちは"))
    friend_b = friend_of(clinic_b, patient_writes(sandbox, channel_b, "B患者", "秘密の相談"))
    assert client.get(f"/c/{clinic_a.slug}/inbox/{friend_b.id}").status_code == 404
    assert client.get(f"/c/{clinic_b.slug}/inbox/{friend_b.id}").status_code == 404
    assert post(client, f"/c/{clinic_a.slug}/inbox/{friend_b.id}/send", {"text": "x"}).status_code == 404
    assert "B患者" not in client.get(f"/c/{clinic_a.slug}/inbox/?status=all").get_data(as_text=True)
    views = _audit("conversation.view")
    assert all(e.target_id != str(friend_b.id) and friend_b.id not in e.details.get("friend_ids", []) for e in views)

    post(client, f"/c/{clinic_a.slug}/inbox/{friend_a.id}/send", {"text": "どうぞ"})
    other = gen_user("responder", clinic=clinic_b)
    login(client, other)
    post(client, f"/c/{clinic_b.slug}/inbox/{friend_b.id}/send", {"text": "承知しました"})
    rows = {}
    for model in (Conversation, ChatSend):
        for clinic in (clinic_a, clinic_b):
            with tenant_scope(clinic.id):
                rows[(model, clinic.id)] = db.session.scalars(sa.select(model)).one()
    for model in (Conversation, ChatSend):
        assert_rows_isolated(model, rows[(model, clinic_a.id)], rows[(model, clinic_b.id)])


def test_only_roles_reading_chats_reach_the_inbox(sandbox, live_server, client):
    clinic, channel = connect_clinic(sandbox, live_server)
    login(client, gen_user("sender", clinic=clinic))
    assert client.get(f"/c/{clinic.slug}/inbox/").status_code == 403
    assert "チャット" not in client.get(f"/c/{clinic.slug}/").get_data(as_text=True).split("clinic-nav")[1][:2000]


def test_the_list_view_audits_the_previews_it_shows_and_polls_only_when_they_change(sandbox, live_server, client):
    clinic, channel, user = setup_chat(sandbox, live_server, client)
    first = friend_of(clinic, patient_writes(sandbox, channel, "佐藤 花子", "こんにちは"))
    client.get(f"/c/{clinic.slug}/inbox/")
    poll = {"HX-Request": "true"}
    client.get(f"/c/{clinic.slug}/inbox/list", headers=poll)  # same previews: not recorded again
    second = friend_of(clinic, patient_writes(sandbox, channel, "田中 一郎", "薬について"))
    client.get(f"/c/{clinic.slug}/inbox/list", headers=poll)
    lists = [e for e in _audit("conversation.view") if e.target_type == "conversation_list"]
    assert [sorted(e.details["friend_ids"]) for e in lists] == [[first.id], sorted([first.id, second.id])]
    assert all(e.actor_user_id == user.id and e.clinic_id == clinic.id for e in lists)
