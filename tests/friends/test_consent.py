"""Consent is real: asked in the greeting, changed by the patient in LINE or by staff with a
reason, and honoured by marketing sends and reminders (urgent notices excepted)."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.booking import services as booking_services
from saas.delivery import audience, services
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.friends.models import ConsentChange, Friend
from saas.reminders import jobs as reminder_jobs
from saas.tenancy.scoping import tenant_scope
from tests.booking.support import booking_clinic, tomorrow_at
from tests.conftest import csrf_token
from tests.factories import gen_user
from tests.helpers import login
from tests.webhooks.support import connect_clinic, run_jobs


def _friend(clinic, user_id: str) -> Friend:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return db.session.scalar(sa.select(Friend).where(Friend.line_user_id == user_id))


def _greeting(clinic) -> None:
    from saas.autoreply.services import get_settings

    with tenant_scope(clinic.id):
        get_settings(clinic.id).greeting_messages = [{"type": "text", "text": "友だち追加ありがとうございます"}]
        db.session.commit()


def _new_friend(sandbox, channel, name="高橋 美咲") -> str:
    patient = sandbox.add_patient(channel, name)
    sandbox.follow(channel, patient)
    run_jobs()
    return patient


def _broadcast(clinic, text: str) -> Delivery:
    with tenant_scope(clinic.id):
        delivery = services.create_delivery(kind="broadcast", messages=[{"type": "text", "text": text}])
        services.submit(delivery)
        delivery_id = delivery.id
    run_jobs()
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return db.session.get(Delivery, delivery_id)


def _texts(sandbox, channel, patient) -> list[str]:
    return [m["message"].get("text", "") for m in sandbox.inbox(channel, patient)]


def test_a_new_friend_is_not_opted_in_to_marketing_and_is_asked_in_the_greeting(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    _greeting(clinic)
    patient = _new_friend(sandbox, channel)
    friend = _friend(clinic, patient)
    assert not friend.consent_marketing and friend.consent_booking
    greeting, question = sandbox.inbox(channel, patient)
    assert question["via"] == "reply"
    assert greeting["message"]["text"] == "友だち追加ありがとうございます"
    labels = [item["action"]["label"] for item in question["message"]["quickReply"]["items"]]
    assert labels == ["お知らせを受け取る", "受け取らない"]

    sandbox.postback(channel, patient, "consent:marketing:no")
    sandbox.unfollow(channel, patient)
    sandbox.follow(channel, patient)
    run_jobs()
    assert sandbox.inbox(channel, patient)[-1]["message"]["text"] == "友だち追加ありがとうございます", "asked once"


def test_consent_given_then_withdrawn_in_line_decides_who_the_next_broadcast_reaches(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    patient = _new_friend(sandbox, channel)
    first = _broadcast(clinic, "インフルエンザ予防接種のご案内")
    assert "インフルエンザ予防接種のご案内" not in _texts(sandbox, channel, patient)
    assert first.skipped.get("no_consent") == 1

    sandbox.postback(channel, patient, "consent:marketing:yes")
    run_jobs()
    assert "お知らせ（健康情報・キャンペーン）を「受け取る」に設定しました" in _texts(sandbox, channel, patient)[-1]
    _broadcast(clinic, "健康診断のご案内")
    assert "健康診断のご案内" in _texts(sandbox, channel, patient)

    sandbox.postback(channel, patient, "consent:marketing:no")
    run_jobs()
    third = _broadcast(clinic, "秋のキャンペーン")
    assert "秋のキャンペーン" not in _texts(sandbox, channel, patient)
    assert third.skipped.get("no_consent") == 1
    with tenant_scope(clinic.id):
        changes = db.session.execute(sa.select(ConsentChange.granted, ConsentChange.changed_by)).all()
        assert [tuple(c) for c in changes] == [(True, "patient"), (False, "patient")]
        assert (
            db.session.scalar(
                sa.select(sa.func.count(AuditEvent.id)).where(AuditEvent.action == "friend.consent_changed")
            )
            == 2
        )


def test_the_consent_status_postback_shows_the_settings_with_buttons_to_change_them(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    patient = _new_friend(sandbox, channel)
    sandbox.postback(channel, patient, "consent:status")
    run_jobs()
    answer = sandbox.inbox(channel, patient)[-1]["message"]
    assert "お知らせ（健康情報・キャンペーン）：受け取らない" in answer["text"]
    assert "予約・再来院のリマインダー：受け取る" in answer["text"]
    assert len(answer["quickReply"]["items"]) == 4


def test_urgent_notices_still_reach_a_friend_without_marketing_consent(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    patient = _new_friend(sandbox, channel)
    with tenant_scope(clinic.id):
        assert [c.line_user_id for c in audience.eligible_friends("urgent")] == [patient]
        assert audience.eligible_friends("broadcast") == []
        assert audience.count_audience("urgent").eligible == 1


def test_staff_change_consent_only_with_a_reason_and_it_is_audited(client, sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    patient = _new_friend(sandbox, channel)
    friend_id = _friend(clinic, patient).id
    login(client, gen_user("admin", clinic=clinic))
    url = f"/c/{clinic.slug}/friends/{friend_id}/consent"
    token = csrf_token(client)
    refused = client.post(url, data={"csrf_token": token, "kind": "marketing", "granted": "yes", "reason": " "})
    assert refused.status_code == 302
    assert not _friend(clinic, patient).consent_marketing

    client.post(url, data={"csrf_token": token, "kind": "marketing", "granted": "yes", "reason": "受付で同意書に署名"})
    assert _friend(clinic, patient).consent_marketing
    with tenant_scope(clinic.id):
        event = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "friend.consent_changed"))
        assert event.details["reason"] == "受付で同意書に署名" and event.actor_user_id is not None
    page = client.get(f"/c/{clinic.slug}/friends/{friend_id}").get_data(as_text=True)
    assert "受付で同意書に署名" in page


def test_a_friend_who_declined_reminders_gets_no_day_before_reminder(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = _new_friend(sandbox, channel, "田中 太郎")
    sandbox.postback(channel, patient, "consent:reminders:no")
    run_jobs()
    with tenant_scope(clinic.id):
        booking = booking_services.book(
            clinic, line_user_id=patient, patient_name="田中", starts_at=tomorrow_at(clinic)
        )
        due, booking_id = booking.reminder_at, booking.id
    assert reminder_jobs.send_booking_reminder(clinic.id, booking_id, due + timedelta(minutes=1)) == "no-consent"
    assert not any(t.startswith("【明日のご予約】") for t in _texts(sandbox, channel, patient))


def test_a_consent_tap_the_bot_answered_is_not_an_unanswered_chat_but_a_question_is(sandbox, live_server):
    from saas.inbox.services import unanswered_counts

    clinic, channel = connect_clinic(sandbox, live_server)
    _greeting(clinic)
    patient = _new_friend(sandbox, channel)
    sandbox.postback(channel, patient, "consent:marketing:yes")
    run_jobs()
    assert "「受け取る」に設定しました" in _texts(sandbox, channel, patient)[-1], "the bot answered the tap"
    assert unanswered_counts([clinic.id]).get(clinic.id, 0) == 0, "nothing for staff to answer"

    sandbox.send_text(channel, patient, "予約の変更はできますか")
    run_jobs()
    assert unanswered_counts([clinic.id]).get(clinic.id, 0) == 1, "a question waits for staff"
