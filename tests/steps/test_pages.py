"""The step delivery pages: a scenario built in the portal, its steps, the phone preview, the
funnel, starting for a segment and for one friend, test sends; another clinic gets 404."""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db
from saas.friends.models import Friend
from saas.steps.models import ScenarioStep, StepEnrolment, StepScenario
from saas.tenancy.scoping import tenant_scope
from tests.conftest import csrf_token
from tests.delivery.support import add_friends, connected_clinic, drain
from tests.factories import gen_clinic, gen_user
from tests.helpers import login
from tests.steps.support import scenario, text


def _post(client, url: str, **data):
    return client.post(url, data={"csrf_token": csrf_token(client), **data})


def _build(client, clinic) -> int:
    base = f"/c/{clinic.slug}/steps"
    created = _post(client, f"{base}/", name="初診後フォロー", key="first-visit", trigger="manual", goal_booked="1")
    assert created.status_code == 302
    with tenant_scope(clinic.id):
        scenario_id = db.session.scalar(sa.select(StepScenario.id).where(StepScenario.key == "first-visit"))
    steps = [
        {"name": "ご挨拶", "delay_kind": "after_start", "delay_value": "0", "delay_unit": "minutes", "m0_text": "本日はご来院ありがとうございました"},
        {"name": "お薬", "delay_kind": "day_at", "delay_value": "1", "at_time": "10:00", "m0_text": "お薬は飲み切りましょう"},
        {"name": "再診", "delay_kind": "after_previous", "delay_value": "7", "delay_unit": "days", "m0_text": "{{friend.display_name}}様、その後いかがですか"},
    ]  # fmt: skip
    for step in steps:
        saved = _post(client, f"{base}/{scenario_id}/steps/", m0_type="text", **step)
        assert saved.status_code == 302, saved.get_data(as_text=True)
    return scenario_id


def test_staff_build_a_three_step_scenario_and_see_it_as_a_phone_timeline(client, sandbox):
    clinic = connected_clinic(sandbox, "3200000001")
    login(client, gen_user("sender", clinic=clinic))
    scenario_id = _build(client, clinic)
    page = client.get(f"/c/{clinic.slug}/steps/{scenario_id}").get_data(as_text=True)
    assert page.count('class="step-item"') == 3 and "開始から1日後の 10:00" in page

    preview = client.get(f"/c/{clinic.slug}/steps/{scenario_id}/preview").get_data(as_text=True)
    assert preview.count('data-testid="timeline-step"') == 3
    assert "山田 花子様、その後いかがですか" in preview  # variables shown with the sample patient
    assert "12:00" in preview and "10:00" in preview

    started = _post(client, f"/c/{clinic.slug}/steps/{scenario_id}/status", status="active")
    assert started.status_code == 302
    listing = client.get(f"/c/{clinic.slug}/steps/").get_data(as_text=True)
    assert "初診後フォロー" in listing and "scenario-chart" in listing and "配信中" in listing


def test_a_step_with_a_bad_message_or_delay_is_refused_and_nothing_is_saved(client, sandbox):
    clinic = connected_clinic(sandbox, "3200000002")
    login(client, gen_user("sender", clinic=clinic))
    scenario_id = scenario(clinic, "空", [], status="draft")
    url = f"/c/{clinic.slug}/steps/{scenario_id}/steps/"
    unknown = _post(client, url, m0_type="text", m0_text="{{friend.nickname}}様", delay_value="1")
    assert unknown.status_code == 422
    negative = _post(client, url, m0_type="text", m0_text="こんにちは", delay_value="-1", delay_unit="days")
    assert negative.status_code == 400 and "待ち時間" in negative.get_data(as_text=True)
    empty = _post(client, url, delay_value="1")
    assert empty.status_code == 400
    activate = _post(client, f"/c/{clinic.slug}/steps/{scenario_id}/status", status="active")
    assert activate.status_code == 302
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(ScenarioStep.id))) == 0
        assert db.session.get(StepScenario, scenario_id).status == "draft"  # no steps: not started


def test_a_condition_or_action_row_whose_choice_cannot_be_read_is_refused_not_dropped(client, sandbox):
    """A tag condition that lost its tag would make the step go to everyone: it is refused."""
    clinic = connected_clinic(sandbox, "3200000012")
    login(client, gen_user("sender", clinic=clinic))
    scenario_id = scenario(clinic, "条件つき", [], status="draft")
    url = f"/c/{clinic.slug}/steps/{scenario_id}/steps/"
    step = {"m0_type": "text", "m0_text": "タグのある方へ", "delay_value": "1", "delay_unit": "days"}
    for row in ({"cond0_kind": "tag_has", "cond0_tag": "abc"}, {"cond1_kind": "source", "cond1_source": ""},
                {"cond0_kind": "field", "cond0_field": "²"}, {"act0_kind": "add_tag", "act0_target": "x"},
                {"cond0_kind": "tag", "cond0_tag": "5"}, {"cond2_kind": "coupon_not_used", "cond2_coupon": "１２x"},
                {"act1_kind": "send_everything", "act1_target": "1"}):  # fmt: skip
        refused = _post(client, url, **step, **row)
        assert refused.status_code == 400, row
        assert "選んでください" in refused.get_data(as_text=True)
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(ScenarioStep.id))) == 0
    unused_rows = _post(client, url, **step, cond0_kind="", cond0_tag="abc", act0_kind="", act0_target="",
                        cond1_kind="coupon_not_used", cond1_coupon="")  # fmt: skip
    assert unused_rows.status_code == 302
    with tenant_scope(clinic.id):
        saved = db.session.scalars(sa.select(ScenarioStep)).one()
        assert (saved.conditions["rules"], saved.actions) == ([{"kind": "coupon_used", "value": False}], [])


def test_starting_for_a_segment_shows_the_count_and_quota_first(client, sandbox):
    clinic = connected_clinic(sandbox, "3200000003")
    add_friends(sandbox, clinic, 4)
    login(client, gen_user("sender", clinic=clinic))
    scenario_id = scenario(clinic, "健診リマインド", [{"delay_value": 0, "messages": text("健診のご案内")}])
    url = f"/c/{clinic.slug}/steps/{scenario_id}/segment"
    check = _post(client, url)
    assert check.status_code == 200 and "4 人に開始する" in check.get_data(as_text=True)
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(StepEnrolment.id))) == 0  # only counted so far
    _post(client, url, confirm="1")
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(StepEnrolment.id))) == 4


def test_a_friend_page_shows_progress_and_staff_start_stop_and_test_send(client, sandbox):
    clinic = connected_clinic(sandbox, "3200000004")
    patient = add_friends(sandbox, clinic, 1)[0]
    login(client, gen_user("sender", clinic=clinic))
    scenario_id = scenario(
        clinic, "美容フォロー", [{"name": "コラム", "delay_value": 1, "messages": text("美肌コラム")}]
    )
    with tenant_scope(clinic.id):
        friend_id = db.session.scalar(sa.select(Friend.id))
    _post(client, f"/c/{clinic.slug}/steps/friends/{friend_id}/start", scenario_id=scenario_id)
    page = client.get(f"/c/{clinic.slug}/friends/{friend_id}").get_data(as_text=True)
    assert "美容フォロー" in page and "参加中" in page and "次: コラム" in page
    _post(client, f"/c/{clinic.slug}/steps/friends/{friend_id}/stop", scenario_id=scenario_id)
    assert "手動で停止" in client.get(f"/c/{clinic.slug}/friends/{friend_id}").get_data(as_text=True)

    _post(client, f"/c/{clinic.slug}/steps/{scenario_id}/test", friend_id=str(friend_id))
    drain()
    texts = [m["message"].get("text") for m in sandbox.inbox(clinic.line_channel_id, patient)]
    assert texts == ["美肌コラム"]


def test_another_clinics_scenarios_answer_404(client, sandbox):
    mine, theirs = connected_clinic(sandbox, "3200000005"), gen_clinic(name="よそのクリニック")
    login(client, gen_user("sender", clinic=mine))
    foreign = scenario(theirs, "よその", [{"delay_value": 1, "messages": text("x")}])
    with tenant_scope(theirs.id):
        step_id = db.session.scalar(sa.select(ScenarioStep.id))
        db.session.add(Friend(clinic_id=theirs.id, line_user_id="U" + "9" * 32, attributes={}))
        db.session.commit()
        their_friend = db.session.scalar(sa.select(Friend.id))
    own = scenario(mine, "うちの", [{"delay_value": 1, "messages": text("y")}])
    base = f"/c/{mine.slug}/steps"
    for url in (f"{base}/{foreign}", f"{base}/{foreign}/preview", f"{base}/{foreign}/steps/{step_id}"):
        assert client.get(url).status_code == 404
    for url, data in (
        (f"{base}/{foreign}", {"name": "乗っ取り", "key": "x"}),
        (f"{base}/{foreign}/status", {"status": "paused"}),
        (f"{base}/{foreign}/steps/{step_id}/delete", {}),
        (f"{base}/{own}/steps/{step_id}", {"m0_type": "text", "m0_text": "z", "delay_value": "1"}),
        (f"{base}/friends/{their_friend}/start", {"scenario_id": str(own)}),
        (f"{base}/{own}/test", {"friend_id": str(their_friend)}),
    ):
        assert _post(client, url, **data).status_code == 404, url
    with tenant_scope(theirs.id):
        assert db.session.get(StepScenario, foreign).status == "active"
        assert db.session.scalar(sa.select(sa.func.count(ScenarioStep.id))) == 1


def test_a_new_step_opens_without_errors_and_names_field_comparisons_in_japanese(client, sandbox):
    from saas.fields import services as fields
    from saas.fields.models import FriendField

    clinic = connected_clinic(sandbox, "3200000009")
    with tenant_scope(clinic.id):
        fields.save_field(FriendField(), key="last_visit", label="最終来院日", kind="date")
        db.session.commit()
    login(client, gen_user("sender", clinic=clinic))
    scenario_id = _build(client, clinic)
    editor = client.get(f"/c/{clinic.slug}/steps/{scenario_id}/steps/new").get_data(as_text=True)
    assert ">日以上前<" in editor and ">before_days<" not in editor
    opened = _post(client, f"/c/{clinic.slug}/steps/{scenario_id}/steps/preview", m0_type="text", m0_text="")
    assert opened.status_code == 200 and "field-error" not in opened.get_data(as_text=True)
    typed = _post(client, f"/c/{clinic.slug}/steps/{scenario_id}/steps/preview", m0_type="text", m0_text="x" * 5001)
    assert "field-error" in typed.get_data(as_text=True)  # a real mistake is still shown
