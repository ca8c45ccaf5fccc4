"""Step delivery through the sandbox with a fixed clock: a follow via a tracked source starts the
scenario, steps go out at the right local times (night and closed days shifted), a booking is the
goal; branches on a tag, blocks mid-scenario, two workers at once, and waiting for quota."""

from __future__ import annotations

import threading
from datetime import timedelta

import requests
import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.booking import services as booking
from saas.common import JAPAN, to_local, utcnow
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.friends import services as friends
from saas.friends.models import Direction, Friend, Message
from saas.inbox.models import Conversation
from saas.portal.models import MessageDay
from saas.quota.counter import reserve
from saas.quota.plans import set_clinic_plan
from saas.schedule.models import Closure
from saas.steps import clock, enrolments, jobs
from saas.steps.models import StepScenario, StepSend
from saas.tenancy.scoping import tenant_scope
from tests.booking.support import booking_clinic, tomorrow_at
from tests.delivery.support import add_friends, connected_clinic, drain
from tests.sources.test_sources import _sign_in, _source
from tests.steps.support import conversation_texts, enrolment, japan, scenario, text, tick
from tests.steps.support import received as all_received
from tests.webhooks.support import run_jobs

THREE_STEPS = [
    {"name": "ご挨拶", "delay_kind": "after_start", "delay_value": 0, "delay_unit": "minutes",
     "messages": text("ご登録ありがとうございます")},
    {"name": "院長紹介", "delay_kind": "day_at", "delay_value": 2, "at_time": "10:00",
     "messages": text("院長のご紹介です")},
    {"name": "コラム", "delay_kind": "after_previous", "delay_value": 2, "delay_unit": "days",
     "messages": text("スキンケアのコラムです")},
]  # fmt: skip


def received(sandbox, channel: str, patient: str) -> list[str]:
    """The texts of step messages the patient received (the greeting and notices left out)."""
    ours = {
        "ご登録ありがとうございます",
        "院長のご紹介です",
        "スキンケアのコラムです",
        "美容のご案内",
        "美容の続き",
        "皆さまへ",
    }
    return [t for t in all_received(sandbox, channel, patient) if t in ours]


def _day0():
    return to_local(utcnow(), JAPAN).date() + timedelta(days=1)


def _start_for(clinic, scenario_id: int, patients: list[str], at) -> None:
    with clock.frozen(at), tenant_scope(clinic.id):
        chosen = db.session.get(StepScenario, scenario_id)
        for friend in db.session.scalars(sa.select(Friend).where(Friend.line_user_id.in_(patients))):
            enrolments.start(friend, chosen, "manual")
        db.session.commit()


def test_a_follow_via_a_source_runs_the_scenario_at_local_times_until_the_booking_goal(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    source = _source(clinic, name="美容皮膚科ポスター")
    day0 = _day0()
    with tenant_scope(clinic.id):
        db.session.add(
            Closure(clinic_id=clinic.id, starts_on=day0 + timedelta(days=2), ends_on=day0 + timedelta(days=2))
        )
        db.session.commit()
    other = scenario(clinic, "全員向け", THREE_STEPS[:1], trigger="follow", key="everyone", trigger_source_id=None)
    chosen = scenario(
        clinic, "美容の流入", THREE_STEPS, trigger="follow", trigger_source_id=source.id, open_days_only=True,
        goals=[{"kind": "booked"}],
    )  # fmt: skip
    patient = sandbox.add_patient(channel, "山田 花子")
    with clock.frozen(japan(day0, 22)):  # she scans the poster at 22:00
        browser = requests.Session()
        browser.get(_sign_in(browser, source.url, patient), allow_redirects=False, timeout=10)
        run_jobs()
    assert enrolment(clinic, chosen, patient).next_due_at == japan(day0 + timedelta(days=1), 9)  # not at night
    assert enrolment(clinic, other, patient) is not None  # the scenario for every new friend started too

    tick(japan(day0, 22, 30))
    tick(japan(day0 + timedelta(days=1), 8, 59))
    assert received(sandbox, channel, patient) == []
    tick(japan(day0 + timedelta(days=1), 9))
    assert received(sandbox, channel, patient) == ["ご登録ありがとうございます", "ご登録ありがとうございます"]

    tick(japan(day0 + timedelta(days=2), 10))  # day 2 at 10:00 falls on a closure: moved, not dropped
    assert len(received(sandbox, channel, patient)) == 2
    assert enrolment(clinic, chosen, patient).next_due_at == japan(day0 + timedelta(days=3), 9)
    tick(japan(day0 + timedelta(days=3), 9))
    assert received(sandbox, channel, patient)[-1] == "院長のご紹介です"
    assert "院長のご紹介です" in conversation_texts(clinic, patient)  # in the 1:1 timeline as sent
    with tenant_scope(clinic.id):  # and the inbox's conversation row knows it is the newest message
        newest = db.session.scalar(sa.select(sa.func.max(Message.id)))
        assert db.session.scalar(sa.select(Conversation.last_message_id)) == newest
        sent = db.session.scalar(sa.select(sa.func.count(Message.id)).where(Message.direction == Direction.OUT))
        assert db.session.scalar(sa.select(sa.func.sum(MessageDay.total)).where(MessageDay.direction == "out")) == sent

    with tenant_scope(clinic.id):
        booking.book(clinic, line_user_id=patient, patient_name="山田 花子", starts_at=tomorrow_at(clinic))
    tick(japan(day0 + timedelta(days=6), 10))
    assert received(sandbox, channel, patient)[-1] == "院長のご紹介です"  # the column never went out
    done = enrolment(clinic, chosen, patient)
    assert (done.status, done.stop_reason) == ("stopped", "goal")


def test_a_step_with_a_tag_condition_branches_friends_without_the_tag(sandbox, live_server):
    clinic = connected_clinic(sandbox, "3100000001")
    tagged, untagged = add_friends(sandbox, clinic, 2)
    with tenant_scope(clinic.id):
        beauty = friends.get_or_create_tag("美容")
        friends.add_tag(db.session.scalar(sa.select(Friend).where(Friend.line_user_id == tagged)), beauty)
        db.session.commit()
        beauty_id = beauty.id
    chosen = scenario(clinic, "分岐", [
        {"name": "美容", "delay_kind": "after_start", "delay_value": 0, "messages": text("美容のご案内"),
         "conditions": {"rules": [{"kind": "tag", "tag_id": beauty_id}]}, "otherwise": "goto"},
        {"name": "続き", "delay_kind": "after_previous", "delay_value": 1, "delay_unit": "hours",
         "messages": text("美容の続き")},
        {"name": "全員", "delay_kind": "after_previous", "delay_value": 1, "delay_unit": "hours",
         "messages": text("皆さまへ")},
    ])  # fmt: skip
    _set_goto(clinic, chosen, 0, 2)
    start = japan(_day0(), 10)
    _start_for(clinic, chosen, [tagged, untagged], start)
    for hours in range(4):
        tick(start + timedelta(hours=hours, minutes=1))
    assert received(sandbox, clinic.line_channel_id, tagged) == ["美容のご案内", "美容の続き", "皆さまへ"]
    assert received(sandbox, clinic.line_channel_id, untagged) == ["皆さまへ"]
    assert enrolment(clinic, chosen, untagged).status == "completed"


def _set_goto(clinic, scenario_id: int, position: int, target: int) -> None:
    from saas.steps.enrolments import steps_of

    with tenant_scope(clinic.id):
        steps = steps_of(scenario_id)
        steps[position].goto_step_id = steps[target].id
        db.session.commit()


def test_a_friend_who_blocks_mid_scenario_stops_and_is_counted(sandbox, live_server):
    clinic = connected_clinic(sandbox, "3100000002")
    stays, leaves, silently = add_friends(sandbox, clinic, 3)
    chosen = scenario(clinic, "ブロック", [THREE_STEPS[0], {**THREE_STEPS[2], "delay_value": 1}])
    start = japan(_day0(), 10)
    _start_for(clinic, chosen, [stays, leaves, silently], start)
    tick(start)
    assert received(sandbox, clinic.line_channel_id, leaves) == ["ご登録ありがとうございます"]
    with tenant_scope(clinic.id):
        leaving = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == leaves))
        friends.mark_blocked(leaving, utcnow())
        from saas.steps import triggers

        triggers.on_unfollow(leaving)
        # the third blocks too, but the unfollow never reached us: the tick finds out itself
        db.session.execute(sa.update(Friend).where(Friend.line_user_id == silently).values(status="blocked"))
        db.session.commit()
    tick(start + timedelta(days=1, minutes=5))
    assert received(sandbox, clinic.line_channel_id, stays)[-1] == "スキンケアのコラムです"
    assert len(received(sandbox, clinic.line_channel_id, leaves)) == 1
    assert len(received(sandbox, clinic.line_channel_id, silently)) == 1
    assert enrolment(clinic, chosen, leaves).stop_reason == "unfollowed"
    quiet = enrolment(clinic, chosen, silently)
    assert (quiet.stop_reason, quiet.unfollowed_at is not None) == ("unfollowed", True)
    with tenant_scope(clinic.id):
        skipped = db.session.scalars(sa.select(StepSend.reason).where(StepSend.status == "skipped")).all()
    assert skipped == ["blocked"]


def test_two_workers_at_once_and_a_rerun_send_each_step_once(sandbox, live_server, app):
    clinic = connected_clinic(sandbox, "3100000003")
    patients = add_friends(sandbox, clinic, 620)
    chosen = scenario(clinic, "競合", THREE_STEPS[:1])
    start = japan(_day0(), 10)
    _start_for(clinic, chosen, patients, start)
    barrier, clinic_id, results = threading.Barrier(2), clinic.id, []

    def worker():
        barrier.wait()
        results.append(jobs.run_clinic_steps(clinic_id, start))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.get("sending", 0) for r in results) == [0, 620]  # one worker won every claim
    assert jobs.run_clinic_steps(clinic_id, start) == {}  # the scan runs again before anything was sent
    drain()
    tick(start + timedelta(minutes=1))
    counts = [len(received(sandbox, clinic.line_channel_id, p)) for p in patients[::31]]
    assert set(counts) == {1}
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(StepSend.id)).where(StepSend.status == "sent")) == 620
        assert db.session.scalar(sa.select(sa.func.count(Delivery.id))) == 1  # one send of two chunks (500 + 120)


def test_over_quota_the_step_waits_and_the_clinic_is_warned_then_goes_out(sandbox, live_server):
    clinic = connected_clinic(sandbox, "3100000004", plan="free")
    patients = add_friends(sandbox, clinic, 3)
    with tenant_scope(clinic.id):
        reserve(clinic.id, 199)  # one message left this month
    chosen = scenario(clinic, "通数", THREE_STEPS[:1])
    start = japan(_day0(), 10)
    _start_for(clinic, chosen, patients, start)
    tick(start)
    assert all(received(sandbox, clinic.line_channel_id, p) == [] for p in patients)  # none, not one of three
    with tenant_scope(clinic.id):
        waiting = db.session.get(StepScenario, chosen)
        assert waiting.waiting_since == start
        warned = db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.action == "steps.waiting_for_quota"))
        assert list(warned) == ["steps.waiting_for_quota"]
        set_clinic_plan(clinic.id, "light")
    tick(start + timedelta(minutes=5))
    assert all(received(sandbox, clinic.line_channel_id, p) == [] for p in patients)  # re-checked every 10 minutes
    tick(start + timedelta(minutes=11))
    assert all(received(sandbox, clinic.line_channel_id, p) == ["ご登録ありがとうございます"] for p in patients)
    with tenant_scope(clinic.id):
        assert db.session.get(StepScenario, chosen).waiting_since is None
