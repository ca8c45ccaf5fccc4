"""What starts and stops a scenario: a rich-menu postback, tags (start and goal), a visit, an
unfollow and a re-follow (resume or not, per scenario), pausing, restarts, goals reported by
other capabilities (coupons, forms), and a send lost before it was queued."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from saas.booking import services as booking
from saas.common import JAPAN, to_local, utcnow
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.friends import services as friends
from saas.friends.models import Friend, Tag
from saas.steps import clock, enrolments, services, triggers
from saas.steps.models import StepScenario, StepSend
from saas.tenancy.scoping import tenant_scope
from tests.booking.support import booking_clinic, tomorrow_at
from tests.delivery.support import add_friends, connected_clinic
from tests.steps.support import enrolment, japan, received, scenario, text, tick
from tests.webhooks.support import connect_clinic, run_jobs

TWO_STEPS = [
    {
        "name": "一通目",
        "delay_kind": "after_start",
        "delay_value": 0,
        "delay_unit": "minutes",
        "messages": text("一通目"),
    },
    {
        "name": "二通目",
        "delay_kind": "after_previous",
        "delay_value": 1,
        "delay_unit": "days",
        "messages": text("二通目"),
    },
]


def _ours(sandbox, channel, patient) -> list[str]:
    return [t for t in received(sandbox, channel, patient) if t in ("一通目", "二通目")]


def _friend(clinic, line_user_id: str) -> Friend:
    return db.session.scalar(sa.select(Friend).where(Friend.line_user_id == line_user_id))


def _today_at(hour: int):
    return japan(to_local(utcnow(), JAPAN).date() + timedelta(days=1), hour)


def test_a_rich_menu_postback_starts_the_scenario_named_by_its_key(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    chosen = scenario(clinic, "健診", TWO_STEPS, trigger="postback", key="kenshin")
    patient = sandbox.add_patient(channel, "佐藤 一郎")
    sandbox.follow(channel, patient)
    sandbox.postback(channel, patient, "steps:start:nothing-by-this-key")
    run_jobs()
    assert enrolment(clinic, chosen, patient) is None
    sandbox.postback(channel, patient, "steps:start:kenshin")
    run_jobs()
    assert enrolment(clinic, chosen, patient).start_reason == "postback"


def test_a_tag_starts_one_scenario_and_is_the_goal_of_another(sandbox, live_server):
    clinic = connected_clinic(sandbox, "3300000001")
    patient = add_friends(sandbox, clinic, 1)[0]
    with tenant_scope(clinic.id):
        tag_id = friends.get_or_create_tag("美容カウンセリング希望").id
        db.session.commit()
    started_by_tag = scenario(clinic, "カウンセリング案内", TWO_STEPS, trigger="tag", trigger_tag_id=tag_id, key="a")
    ended_by_tag = scenario(clinic, "美容の紹介", TWO_STEPS, key="b", goals=[{"kind": "tag", "tag_id": tag_id}])
    with tenant_scope(clinic.id):
        triggers.start(_friend(clinic, patient), db.session.get(StepScenario, ended_by_tag))
        db.session.commit()
        friends.add_tag(_friend(clinic, patient), db.session.get(Tag, tag_id))
        db.session.commit()
    assert enrolment(clinic, started_by_tag, patient).status == "active"
    done = enrolment(clinic, ended_by_tag, patient)
    assert (done.status, done.stop_reason) == ("stopped", "goal")


def test_a_visit_starts_the_follow_up_and_the_booking_goal_stops_it(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "鈴木 花")
    sandbox.follow(channel, patient)
    run_jobs()
    follow_up = scenario(clinic, "初診後", TWO_STEPS, trigger="booking_completed", goals=[{"kind": "booked"}])
    with tenant_scope(clinic.id):
        first = booking.book(clinic, line_user_id=patient, patient_name="鈴木 花", starts_at=tomorrow_at(clinic))
        assert enrolment(clinic, follow_up, patient) is None  # booked, not yet seen
        booking.mark(first, "visited")
    assert enrolment(clinic, follow_up, patient).start_reason == "booking_completed"
    with tenant_scope(clinic.id):
        booking.book(clinic, line_user_id=patient, patient_name="鈴木 花", starts_at=tomorrow_at(clinic, 11))
    assert enrolment(clinic, follow_up, patient).stop_reason == "goal"


def test_unfollow_stops_and_a_refollow_resumes_only_where_the_scenario_says_so(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    resumes = scenario(clinic, "再開する", TWO_STEPS, key="resume", resume_on_refollow=True)
    stays = scenario(clinic, "再開しない", TWO_STEPS, key="stay")
    patient = sandbox.add_patient(channel, "高橋 翼")
    sandbox.follow(channel, patient)
    run_jobs()
    start = _today_at(10)
    with clock.frozen(start), tenant_scope(clinic.id):
        for scenario_id in (resumes, stays):
            enrolments.start(_friend(clinic, patient), db.session.get(StepScenario, scenario_id), "manual")
        db.session.commit()
    tick(start)
    assert _ours(sandbox, channel, patient) == ["一通目", "一通目"]
    sandbox.unfollow(channel, patient)
    run_jobs()
    assert {enrolment(clinic, s, patient).stop_reason for s in (resumes, stays)} == {"unfollowed"}
    with clock.frozen(start + timedelta(hours=3)):
        sandbox.follow(channel, patient)
        run_jobs()
    assert enrolment(clinic, resumes, patient).status == "active"
    assert enrolment(clinic, stays, patient).status == "stopped"
    tick(start + timedelta(days=1, minutes=1))
    assert _ours(sandbox, channel, patient) == ["一通目", "一通目", "二通目"]
    with tenant_scope(clinic.id):
        figures = services.funnel(db.session.get(StepScenario, resumes))
    assert (figures.started, figures.unfollowed, figures.completed) == (1, 1, 1)  # the block stays counted


def test_a_paused_scenario_sends_nothing_until_resumed_and_starts_stay_single(sandbox, live_server):
    clinic = connected_clinic(sandbox, "3300000002")
    patient = add_friends(sandbox, clinic, 1)[0]
    chosen = scenario(clinic, "一時停止", TWO_STEPS)
    start = _today_at(10)
    with clock.frozen(start), tenant_scope(clinic.id):
        target = db.session.get(StepScenario, chosen)
        assert enrolments.start(_friend(clinic, patient), target, "manual") is not None
        assert enrolments.start(_friend(clinic, patient), target, "manual") is None  # once at a time
        services.set_status(target, "paused")
        db.session.commit()
    tick(start + timedelta(minutes=5))
    assert _ours(sandbox, clinic.line_channel_id, patient) == []
    assert enrolment(clinic, chosen, patient).status == "paused"
    with clock.frozen(start + timedelta(hours=2)), tenant_scope(clinic.id):
        services.set_status(db.session.get(StepScenario, chosen), "active")
        db.session.commit()
    tick(start + timedelta(hours=2))
    assert _ours(sandbox, clinic.line_channel_id, patient) == ["一通目"]
    with tenant_scope(clinic.id):  # finished without restarts: never again; with restarts: from the top
        target = db.session.get(StepScenario, chosen)
        assert enrolments.start(_friend(clinic, patient), target, "manual") is None
        target.allow_restart = True
        again = enrolments.start(_friend(clinic, patient), target, "manual")
        db.session.commit()
        assert again is not None and again.current_step_id == enrolments.steps_of(chosen)[0].id


def test_goals_reported_by_other_capabilities_stop_only_matching_scenarios(sandbox, live_server):
    clinic = connected_clinic(sandbox, "3300000003")
    patient = add_friends(sandbox, clinic, 1)[0]
    any_coupon = scenario(clinic, "クーポン", TWO_STEPS, key="c1", goals=[{"kind": "coupon_used"}])
    other_form = scenario(clinic, "問診", TWO_STEPS, key="c2", goals=[{"kind": "form_answered", "form_id": 9}])
    with tenant_scope(clinic.id):
        friend = _friend(clinic, patient)
        for scenario_id in (any_coupon, other_form):
            triggers.start(friend, db.session.get(StepScenario, scenario_id))
        assert triggers.on_goal(friend, "form_answered", form_id=3) == 0  # another form
        assert triggers.on_goal(friend, "coupon_used", coupon_id=12) == 1
        db.session.commit()
    assert enrolment(clinic, any_coupon, patient).stop_reason == "goal"
    assert enrolment(clinic, other_form, patient).status == "active"


def test_a_send_lost_before_it_was_queued_is_given_back_and_sent_once_later(sandbox, live_server):
    clinic = connected_clinic(sandbox, "3300000004")
    patient = add_friends(sandbox, clinic, 1)[0]
    chosen = scenario(clinic, "失われた送信", TWO_STEPS[:1])
    start = _today_at(10)
    with clock.frozen(start), tenant_scope(clinic.id):
        enrolments.start(_friend(clinic, patient), db.session.get(StepScenario, chosen), "manual")
        db.session.commit()
    from saas.steps import jobs

    jobs.run_clinic_steps(clinic.id, start)  # claimed and handed to the pipeline ...
    with tenant_scope(clinic.id):  # ... which lost it (Redis down: submit deletes the delivery)
        db.session.execute(sa.delete(Delivery))
        db.session.commit()
    tick(start + timedelta(minutes=1))
    assert _ours(sandbox, clinic.line_channel_id, patient) == ["一通目"]
    tick(start + timedelta(minutes=2))
    assert _ours(sandbox, clinic.line_channel_id, patient) == ["一通目"]
    with tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(StepSend.status)).all() == ["sent"]
