"""Emergency symptoms over LINE (sandbox): 119 / #7119 guidance with the clinic's phone, even while
staff hold the chat, and the conversation flagged urgent and listed first in the inbox."""

from __future__ import annotations

from saas.autoreply import services
from saas.autoreply.emergency import DEFAULT_EMERGENCY_KEYWORDS
from saas.extensions import db
from saas.tenancy.scoping import tenant_scope
from tests.inbox.support import friend_of, patient_writes, post, setup_chat


def _last_text(sandbox, channel: str, user_id: str) -> str:
    return sandbox.inbox(channel, user_id)[-1]["message"].get("text", "")


def test_chest_pain_gets_119_guidance_and_the_chat_is_urgent_and_first(client, sandbox, live_server):
    clinic, channel, _user = setup_chat(sandbox, live_server, client)
    clinic.phone = "03-1234-5601"
    db.session.commit()
    calm = patient_writes(sandbox, channel, "山田 花子", "駐車場はありますか")
    ill = patient_writes(sandbox, channel, "佐藤 健太", "胸が痛くて息苦しい")
    patient_writes(sandbox, channel, "山田 花子", "ありがとうございます", user_id=calm)  # the newest message

    answer = _last_text(sandbox, channel, ill)
    assert "119" in answer and "#7119" in answer and "03-1234-5601" in answer
    assert "スタッフが確認して" not in answer
    friend = friend_of(clinic, ill)
    listing = client.get(f"/c/{clinic.slug}/inbox/").get_data(as_text=True)
    assert f'data-testid="urgent-{friend.id}"' in listing
    assert listing.index(f"conversation-{friend.id}") < listing.index(f"conversation-{friend_of(clinic, calm).id}")
    page = client.get(f"/c/{clinic.slug}/inbox/{friend.id}").get_data(as_text=True)
    assert 'data-testid="urgent-flag"' in page and "自動応答" in page

    post(client, f"/c/{clinic.slug}/inbox/{friend.id}/status", {"status": "resolved"})
    assert f'data-testid="urgent-{friend.id}"' not in client.get(f"/c/{clinic.slug}/inbox/").get_data(as_text=True)


def test_emergency_guidance_goes_out_even_while_staff_hold_the_chat(client, sandbox, live_server):
    clinic, channel, _user = setup_chat(sandbox, live_server, client)
    patient = patient_writes(sandbox, channel, "鈴木 美咲", "スタッフと話したい")
    before = len(sandbox.inbox(channel, patient))
    patient_writes(sandbox, channel, "鈴木 美咲", "子どもがけいれんしています", user_id=patient)
    assert len(sandbox.inbox(channel, patient)) == before + 1
    assert "119" in _last_text(sandbox, channel, patient)


def test_the_keyword_list_is_the_clinics_own_and_blank_restores_the_default(client, sandbox, live_server):
    clinic, channel, _user = setup_chat(sandbox, live_server, client, role="admin")
    page = client.get(f"/c/{clinic.slug}/autoreply/settings").get_data(as_text=True)
    assert "胸が痛" in page and "#7119" in page
    post(
        client,
        f"/c/{clinic.slug}/autoreply/settings",
        {"emergency_keywords": "めまいで立てない", "handoff_phrases": "スタッフと話したい"},
    )
    patient = patient_writes(sandbox, channel, "高橋 大輔", "めまいで立てないです")
    assert "119" in _last_text(sandbox, channel, patient)
    with tenant_scope(clinic.id):
        assert services.get_settings(clinic.id).emergency_keywords == ["めまいで立てない"]
    post(
        client,
        f"/c/{clinic.slug}/autoreply/settings",
        {"emergency_keywords": "", "handoff_phrases": "スタッフと話したい"},
    )
    with tenant_scope(clinic.id):
        db.session.expire_all()
        assert services.get_settings(clinic.id).emergency_keywords is None
        assert "胸が痛" in DEFAULT_EMERGENCY_KEYWORDS
