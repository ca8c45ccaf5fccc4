"""The FAQ bot end to end: a patient writes in LINE (sandbox), the webhook is stored, a worker
answers with the reply token, and the patient's phone shows the answer."""

from __future__ import annotations

import pytest

from saas.autoreply.models import AutoReplyRule
from saas.extensions import db
from saas.tenancy.scoping import tenant_scope
from tests.webhooks.support import connect_clinic, run_jobs


@pytest.fixture
def clinic_on_line(sandbox, live_server):
    clinic, channel_id = connect_clinic(sandbox, live_server, name="あおば皮膚科")
    clinic.parking = "提携駐車場（タイムズ青葉台）をご利用いただけます。"
    with tenant_scope(clinic.id):
        db.session.add(AutoReplyRule(name="駐車場", keywords=["駐車場", "ちゅうしゃじょう"], computed="parking"))
        db.session.commit()
    return clinic, channel_id


def _texts_received(sandbox, channel_id: str, user_id: str) -> list[tuple[str, str]]:
    return [(item["via"], item["message"].get("text", "")) for item in sandbox.inbox(channel_id, user_id)]


def test_a_half_width_question_in_line_gets_the_parking_answer_by_reply(sandbox, clinic_on_line):
    clinic, channel_id = clinic_on_line
    patient = sandbox.add_patient(channel_id, "山田 花子")
    sandbox.follow(channel_id, patient)
    run_jobs()
    answered = sandbox.send_text(channel_id, patient, "ﾁｭｳｼｬｼﾞｮｳ ありますか？")
    assert answered["status"] == 200
    run_jobs()
    via, text = _texts_received(sandbox, channel_id, patient)[-1]
    assert via == "reply" and "提携駐車場（タイムズ青葉台）" in text


def test_asking_for_staff_pauses_the_bot_for_that_patient_only(sandbox, clinic_on_line):
    clinic, channel_id = clinic_on_line
    patient, other = sandbox.add_patient(channel_id, "佐藤 健太"), sandbox.add_patient(channel_id, "鈴木 美咲")
    for user in (patient, other):
        sandbox.follow(channel_id, user)
    run_jobs()
    sandbox.send_text(channel_id, patient, "スタッフと話したい")
    run_jobs()
    before = len(sandbox.inbox(channel_id, patient))
    sandbox.send_text(channel_id, patient, "駐車場はありますか")
    sandbox.send_text(channel_id, other, "駐車場はありますか")
    run_jobs()
    assert len(sandbox.inbox(channel_id, patient)) == before, "the bot must stay quiet while staff handle it"
    assert any("タイムズ青葉台" in text for _, text in _texts_received(sandbox, channel_id, other))
