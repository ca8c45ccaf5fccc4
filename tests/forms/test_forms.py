"""Forms through the sandbox: a patient signs in with LINE Login, answers, and the answers write
friend fields, tags, consent and a visit; sensitive answers are encrypted, audited when viewed,
left out of the default export and erased with the patient; other clinics get 404."""

from __future__ import annotations

import requests
import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.delivery import audience
from saas.extensions import db
from saas.fields import services as fields
from saas.forms.models import Form, FormAnswer
from saas.privacy import services as privacy
from saas.steps import triggers
from saas.steps.models import StepScenario
from saas.tenancy.scoping import platform_scope, tenant_scope
from saas.visits.models import Visit
from tests.conftest import csrf_token
from tests.factories import gen_clinic, gen_user
from tests.forms.support import VACCINE_FORM, build_form, form_clinic, friend_of, page_token, sign_in_to_form
from tests.helpers import login

ANSWERS = {
    "q_q1": ["インフルエンザ"],
    "q_q2": "40代",
    "q_q3": "ワーファリン 朝1錠",
    "q_q4": "2025-11-20",
    "q_q5": "yes",
}


def _answer(live_server, clinic, form, patient, answers=ANSWERS) -> requests.Response:
    browser = requests.Session()
    page = sign_in_to_form(browser, f"{live_server.url}/forms/{clinic.slug}/{form.token}", patient)
    assert page.status_code == 200 and "ご希望の予防接種" in page.text and "高橋 美咲 さんとして回答します" in page.text
    return browser.post(page.url, data={**answers, "csrf_token": page_token(page.text)}, timeout=10)


def _segment_count(clinic, form) -> int:
    with tenant_scope(clinic.id):
        return audience.count_audience("segment", {"answered_form_ids": [form.id]}).matched


def test_an_answer_sets_fields_tags_consent_and_a_visit_and_the_segment_counts_the_friend(client, sandbox, live_server):
    clinic, _channel, patient = form_clinic(sandbox, live_server)
    form = build_form(client, clinic)
    assert _segment_count(clinic, form) == 0

    done = _answer(live_server, clinic, form, patient)
    assert done.status_code == 200 and "ご案内をお待ちください" in done.text

    friend = friend_of(clinic, patient)
    with tenant_scope(clinic.id):
        assert fields.values_by_key(friend) == {"age_band": "40代", "last_visit": "2025-11-20"}
        assert [tag.name for tag in friend.tags] == ["インフル希望"]
        assert friend.consent_marketing is True
        visit = db.session.scalar(sa.select(Visit))
        assert (visit.visited_on.isoformat(), visit.source) == ("2025-11-20", "form")
    assert _segment_count(clinic, form) == 1
    live = client.post(
        f"/c/{clinic.slug}/deliveries/count",
        data={"audience": "segment", "answered_form_ids": str(form.id), "csrf_token": csrf_token(client)},
    )
    assert "1" in live.get_data(as_text=True)


def test_every_answer_is_encrypted_at_rest_and_the_sensitive_one_never_leaves_the_answer(client, sandbox, live_server):
    clinic, _channel, patient = form_clinic(sandbox, live_server)
    form = build_form(client, clinic)
    _answer(live_server, clinic, form, patient)
    with platform_scope("test: the raw column"):
        raw = db.session.execute(sa.text("SELECT content FROM form_answer")).scalar()
    assert raw.startswith("gAAAA") and "ワーファリン" not in raw and "インフルエンザ" not in raw
    friend = friend_of(clinic, patient)
    with tenant_scope(clinic.id):
        assert "ワーファリン" not in str(fields.values_by_key(friend))
        assert db.session.scalar(sa.select(FormAnswer)).values["q3"] == "ワーファリン 朝1錠"


def test_a_missing_required_answer_is_shown_and_nothing_is_stored(client, sandbox, live_server):
    clinic, _channel, patient = form_clinic(sandbox, live_server)
    form = build_form(client, clinic)
    answer = _answer(live_server, clinic, form, patient, {**ANSWERS, "q_q1": [], "q_q4": "来週"})
    assert answer.status_code == 400
    assert "この項目は必須です" in answer.text and "日付を選んでください" in answer.text
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(FormAnswer.id))) == 0
        assert friend_of(clinic, patient).tags == []


def test_a_patient_who_is_not_a_friend_is_asked_to_add_the_clinic_first(client, sandbox, live_server):
    clinic, channel, _patient = form_clinic(sandbox, live_server)
    form = build_form(client, clinic)
    stranger = sandbox.add_patient(channel, "佐藤 一郎")
    page = sign_in_to_form(requests.Session(), f"{live_server.url}/forms/{clinic.slug}/{form.token}", stranger)
    assert page.status_code == 403 and "友だち追加してください" in page.text


def test_answers_are_for_staff_allowed_to_read_them_audited_and_sensitive_ones_only_on_request(
    client, sandbox, live_server
):
    clinic, _channel, patient = form_clinic(sandbox, live_server)
    form = build_form(client, clinic)
    _answer(live_server, clinic, form, patient)
    client.get("/auth/logout")
    login(client, gen_user("sender", clinic=clinic))
    assert client.get(f"/c/{clinic.slug}/forms/{form.id}/answers").status_code == 403
    assert client.get(f"/c/{clinic.slug}/forms/{form.id}/answers.csv").status_code == 403

    responder_client = client.application.test_client()
    login(responder_client, gen_user("responder", clinic=clinic))
    listing = responder_client.get(f"/c/{clinic.slug}/forms/{form.id}/answers").get_data(as_text=True)
    assert "インフルエンザ" in listing and "ワーファリン" not in listing
    shown = responder_client.get(f"/c/{clinic.slug}/forms/{form.id}/answers?sensitive=1").get_data(as_text=True)
    assert "ワーファリン" in shown

    assert responder_client.get(f"/c/{clinic.slug}/forms/{form.id}/answers.csv").status_code == 403  # no export
    exporter = client.application.test_client()
    login(exporter, gen_user("admin", clinic=clinic))
    default_csv = exporter.get(f"/c/{clinic.slug}/forms/{form.id}/answers.csv")
    text = default_csv.get_data(as_text=True)
    assert default_csv.mimetype == "text/csv" and "インフルエンザ" in text
    assert "服用中のお薬" not in text and "ワーファリン" not in text
    asked = exporter.get(f"/c/{clinic.slug}/forms/{form.id}/answers.csv?sensitive=1").get_data(as_text=True)
    assert "服用中のお薬" in asked and "ワーファリン" in asked

    with tenant_scope(clinic.id):
        events = db.session.execute(
            sa.select(AuditEvent.action, AuditEvent.details)
            .where(AuditEvent.action.like("form_answer%"))
            .order_by(AuditEvent.id)
        ).all()
    assert [(a, d.get("sensitive")) for a, d in events] == [
        ("form_answers.view", False),
        ("form_answers.view", True),
        ("form_answers.exported", False),
        ("form_answers.exported", True),
    ]


def test_the_friends_csv_leaves_form_answers_out(client, sandbox, live_server):
    clinic, _channel, patient = form_clinic(sandbox, live_server)
    form = build_form(client, clinic)
    _answer(live_server, clinic, form, patient)
    exported = client.get(f"/c/{clinic.slug}/friends/export.csv").get_data(as_text=True)
    assert "高橋 美咲" in exported and "ワーファリン" not in exported


def test_erasing_the_patient_erases_their_answers(client, sandbox, live_server):
    clinic, _channel, patient = form_clinic(sandbox, live_server)
    form = build_form(client, clinic)
    _answer(live_server, clinic, form, patient)
    friend = friend_of(clinic, patient)
    with tenant_scope(clinic.id):
        assert "ワーファリン" in str(privacy.export_data(friend)["form_answers"])
        privacy.erase(friend)
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count(FormAnswer.id))) == 0
        assert db.session.scalar(sa.select(sa.func.count(Visit.id))) == 0


def test_a_sensitive_question_cannot_write_to_a_field_or_a_tag(client, sandbox, live_server):
    clinic, _channel, _patient = form_clinic(sandbox, live_server)
    login(client, gen_user("admin", clinic=clinic))
    refused = client.post(
        f"/c/{clinic.slug}/forms/new",
        data={
            "name": "問診",
            "q-0-label": "持病",
            "q-0-kind": "choice",
            "q-0-choices": "なし\n糖尿病",
            "q-0-sensitive": "1",
            "q-0-tags": "糖尿病=糖尿病",
            "csrf_token": csrf_token(client),
        },
    )
    assert refused.status_code == 400
    assert "要配慮個人情報のため、友だち項目・タグ・来院履歴には書き込めません" in refused.get_data(as_text=True)


def test_the_standard_intake_form_is_created_with_its_sensitive_questions(client, sandbox, live_server):
    clinic, _channel, _patient = form_clinic(sandbox, live_server)
    login(client, gen_user("admin", clinic=clinic))
    created = client.post(f"/c/{clinic.slug}/forms/preset/intake", data={"csrf_token": csrf_token(client)})
    assert created.status_code == 302
    page = client.get(created.headers["Location"]).get_data(as_text=True)
    assert "問診票（初診・再診）" in page and "服用中のお薬" in page
    assert (
        client.post(f"/c/{clinic.slug}/forms/preset/nothing", data={"csrf_token": csrf_token(client)}).status_code
        == 404
    )


def test_another_clinics_forms_and_answers_are_404_for_staff_and_patients(client, sandbox, live_server):
    clinic, _channel, patient = form_clinic(sandbox, live_server)
    form = build_form(client, clinic)
    _answer(live_server, clinic, form, patient)
    with tenant_scope(clinic.id):
        answer_id = db.session.scalar(sa.select(FormAnswer.id))
    other = gen_clinic(name="別のクリニック")
    other_client = client.application.test_client()
    login(other_client, gen_user("owner", clinic=other))
    for path in ("", "/answers", f"/answers/{answer_id}", "/answers.csv"):
        assert other_client.get(f"/c/{other.slug}/forms/{form.id}{path}").status_code == 404, path
    token = csrf_token(other_client)
    assert other_client.post(f"/c/{other.slug}/forms/{form.id}/delete", data={"csrf_token": token}).status_code == 404
    assert requests.get(f"{live_server.url}/forms/{other.slug}/{form.token}", timeout=10).status_code == 404
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(FormAnswer.id))) == 1


def test_a_form_starts_its_step_scenario_and_reaches_the_form_answered_goal(client, sandbox, live_server):
    from tests.steps.support import enrolment, scenario, text

    clinic, _channel, patient = form_clinic(sandbox, live_server)
    follow_up = scenario(clinic, "接種のご案内", [{"name": "1通目", "delay_value": 1, "messages": text("ご案内です")}])
    waiting = scenario(clinic, "回答のお願い", [{"name": "催促", "delay_value": 3, "messages": text("ご回答ください")}])
    form = build_form(client, clinic, {**VACCINE_FORM, "scenario_id": str(follow_up)})
    friend = friend_of(clinic, patient)
    with tenant_scope(clinic.id):
        assert db.session.get(Form, form.id).scenario_id == follow_up
        pending = db.session.get(StepScenario, waiting)
        pending.goals = [{"kind": "form_answered", "form_id": form.id}]
        triggers.start(friend, pending, "manual")
        db.session.commit()
    _answer(live_server, clinic, form, patient)
    assert enrolment(clinic, follow_up, patient).start_reason == "form"
    assert enrolment(clinic, waiting, patient).stop_reason == "goal"
