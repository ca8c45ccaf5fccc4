"""Nothing LINE sent is lost: follower re-sync, unsent messages, patients' media (sandbox over HTTP)."""

from __future__ import annotations

import base64
import json

import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.extensions import db
from saas.friends import hooks
from saas.friends.jobs import resync_all_friends
from saas.friends.models import Friend, Message, MessageMedia
from saas.inbox.models import Conversation
from saas.tenancy.scoping import platform_scope, tenant_scope
from saas.webhooks.models import WebhookEvent
from tests.factories import gen_user
from tests.helpers import login
from tests.webhooks.support import connect_clinic, run_jobs

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def _friends(clinic) -> dict[str, str]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return dict(db.session.execute(sa.select(Friend.line_user_id, Friend.status)).all())


def _greetings(sandbox, channel, patient) -> int:
    """Greetings in the patient's chat (the consent question follows the first one)."""
    return sum(m["message"].get("text") == "ようこそ" for m in sandbox.inbox(channel, patient))


def test_friends_whose_follow_webhook_was_lost_are_added_by_the_daily_resync_without_a_greeting(
    sandbox, live_server, first_responders
):
    clinic, channel = connect_clinic(sandbox, live_server)
    first_responders(hooks._follow_responders, lambda clinic, friend, event: [{"type": "text", "text": "ようこそ"}])
    greeted = sandbox.add_patient(channel, "挨拶 済み")
    sandbox.follow(channel, greeted)
    lost = [sandbox.add_patient(channel, f"未着 {i}") for i in range(3)]
    for patient in lost:
        sandbox.follow(channel, patient, deliver=False)  # the webhook never arrived (an outage)
    run_jobs()
    assert set(_friends(clinic)) == {greeted}

    assert resync_all_friends() == 1
    run_jobs()
    assert _friends(clinic) == {user: "following" for user in [greeted, *lost]}
    with tenant_scope(clinic.id):
        names = set(db.session.scalars(sa.select(Friend.display_name).where(Friend.line_user_id.in_(lost))))
    assert names == {"未着 0", "未着 1", "未着 2"}
    assert _greetings(sandbox, channel, greeted) == 1
    assert all(sandbox.inbox(channel, patient) == [] for patient in lost)  # nobody greeted by the re-sync
    resync_all_friends()
    run_jobs()
    assert _greetings(sandbox, channel, greeted) == 1  # and nobody greeted twice


def test_an_account_without_the_followers_api_is_left_as_it_is(sandbox, live_server):
    from saas.friends.jobs import resync_friends

    clinic, channel = connect_clinic(sandbox, live_server)
    sandbox.configure(channel, followers_api=False)
    patient = sandbox.add_patient(channel, "未認証 アカウント")
    sandbox.follow(channel, patient, deliver=False)
    assert resync_friends(clinic.id) == 0
    assert _friends(clinic) == {}


def test_a_patients_image_is_fetched_stored_encrypted_and_shown_in_the_inbox(sandbox, live_server, client):
    clinic, channel = connect_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "画像 送信")
    sandbox.follow(channel, patient)
    sent = sandbox.send_media(channel, patient, "image", data_base64=base64.b64encode(PNG).decode())
    run_jobs()
    with tenant_scope(clinic.id):
        message = db.session.scalar(sa.select(Message).where(Message.kind == "image"))
        media = db.session.scalar(sa.select(MessageMedia))
    with platform_scope("test: the stored bytes as the database holds them"):
        raw = db.session.execute(sa.text("SELECT content FROM message_media")).scalar()
    assert message.line_message_id == sent["event"]["message"]["id"]
    assert media.state == "stored" and media.size == len(PNG) and media.content_type == "image/png"
    assert base64.b64encode(PNG).decode() not in raw  # encrypted at rest
    page_url = f"/c/{clinic.slug}/inbox/{message.friend_id}"
    media_url = f"{page_url}/media/{message.id}"

    login(client, gen_user("responder", clinic=clinic))
    assert 'data-testid="patient-image"' in client.get(page_url).get_data(as_text=True)
    image = client.get(media_url)
    assert image.status_code == 200 and image.data == PNG and image.mimetype == "image/png"
    with platform_scope("check the audit log"):
        actions = db.session.scalars(sa.select(AuditEvent.action)).all()
    assert "conversation.media.view" in actions


def test_an_unsent_message_is_hidden_in_the_inbox_with_an_audited_tombstone(sandbox, live_server, client):
    clinic, channel = connect_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "取消 太郎")
    sandbox.follow(channel, patient)
    sent = sandbox.send_text(channel, patient, "間違えて送った保険証番号 1234-5678")
    photo = sandbox.send_media(channel, patient, "image")
    sandbox.send_text(channel, patient, "予約の変更をお願いします")
    run_jobs()
    sandbox.unsend(channel, patient, sent["event"]["message"]["id"])
    sandbox.unsend(channel, patient, photo["event"]["message"]["id"])
    sandbox.unsend(channel, patient, sent["event"]["message"]["id"])  # LINE may deliver it twice
    run_jobs()
    with tenant_scope(clinic.id):
        rows = db.session.scalars(sa.select(Message).order_by(Message.id)).all()[:2]
        assert db.session.scalar(sa.select(sa.func.count(MessageMedia.id))) == 0
        unread = db.session.scalar(
            sa.select(Conversation.unread_count).where(Conversation.friend_id == rows[0].friend_id)
        )
    assert [(m.kind, m.text, m.unsent_at is not None) for m in rows] == [("text", "", True), ("image", "", True)]
    assert unread == 1  # the two unsent messages no longer wait for staff; the third does
    with platform_scope("check the audit log"):
        unsent = db.session.scalars(
            sa.select(AuditEvent).where(AuditEvent.action == "message.unsent").order_by(AuditEvent.id)
        ).all()
    assert len(unsent) == 2 and unsent[0].details["message_id"] == rows[0].id
    page_url = f"/c/{clinic.slug}/inbox/{rows[0].friend_id}"
    media_url = f"{page_url}/media/{rows[1].id}"

    login(client, gen_user("responder", clinic=clinic))
    page = client.get(page_url).get_data(as_text=True)
    assert "1234-5678" not in page and page.count('data-testid="unsent"') == 2
    assert client.get(media_url).status_code == 404


PRIVATE = "電話番号は090-1234-5678、保険証番号は12345678です"


def _rows_holding(*needles: str) -> list[str]:
    """Every table and column whose stored value (decrypted, JSON as written) holds one of ``needles``."""
    found = []
    with platform_scope("test: look for a patient's words in every table"):
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(sa.select(table)).mappings():
                for column, value in row.items():
                    shown = (
                        json.dumps(value, ensure_ascii=False, default=str)
                        if isinstance(value, dict | list)
                        else str(value)
                    )
                    if any(needle in shown for needle in needles):
                        found.append(f"{table.name}.{column}")
    return found


def test_an_unsent_messages_words_are_left_in_no_table_and_the_inbox_list_shows_the_tombstone(
    sandbox, live_server, client
):
    clinic, channel = connect_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "取消 花子")
    sandbox.follow(channel, patient)
    sent = sandbox.send_text(channel, patient, PRIVATE)
    run_jobs()
    assert "webhook_event.payload" in _rows_holding("090-1234-5678")  # the search sees what it looks for
    sandbox.unsend(channel, patient, sent["event"]["message"]["id"])
    run_jobs()

    assert _rows_holding(PRIVATE, "090-1234-5678", "12345678") == []
    with tenant_scope(clinic.id):
        event = db.session.scalar(sa.select(WebhookEvent).where(WebhookEvent.event_type == "message"))
    assert event.payload["message"] == {"id": sent["event"]["message"]["id"], "type": "text"}
    assert event.webhook_event_id == sent["event"]["webhookEventId"]  # a redelivery still collapses onto it
    login(client, gen_user("responder", clinic=clinic))
    listing = client.get(f"/c/{clinic.slug}/inbox/").get_data(as_text=True)
    assert "090-1234-5678" not in listing and 'data-testid="unsent-preview"' in listing


def test_media_of_another_clinic_is_not_found(sandbox, live_server, client):
    clinic, channel = connect_clinic(sandbox, live_server)
    other, _ = connect_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "他院 患者")
    sandbox.follow(channel, patient)
    sandbox.send_media(channel, patient, "image")
    run_jobs()
    with tenant_scope(clinic.id):
        message = db.session.scalar(sa.select(Message).where(Message.kind == "image"))
        url = f"/c/{other.slug}/inbox/{message.friend_id}/media/{message.id}"
    login(client, gen_user("responder", clinic=other))
    assert client.get(url).status_code == 404


def test_erasing_a_patient_removes_their_media(sandbox, live_server):
    from saas.privacy.services import erase

    clinic, channel = connect_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "消去 希望")
    sandbox.follow(channel, patient)
    sandbox.send_media(channel, patient, "image")
    run_jobs()
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(MessageMedia.id))) == 1
        erase(db.session.scalar(sa.select(Friend).where(Friend.line_user_id == patient)))
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count(MessageMedia.id))) == 0
