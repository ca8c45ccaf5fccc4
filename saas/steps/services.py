"""Scenarios and steps for the portal: saving them, their funnel figures, a friend's progress,
the preview timeline, starting for a segment and test sends (current tenant scope)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from saas.common import parse_id, to_local, to_utc, utcnow, zone_of
from saas.delivery import audience
from saas.delivery import services as delivery
from saas.delivery.models import DeliveryKind
from saas.extensions import db
from saas.friends.models import Friend, FriendStatus
from saas.messaging.limits import MAX_MESSAGES
from saas.messaging.variables import render, sample_context
from saas.quota.usage import usage
from saas.steps import enrolments
from saas.steps.actions import KINDS as ACTION_KINDS
from saas.steps.models import (
    DelayKind,
    EnrolmentStatus,
    ScenarioStatus,
    ScenarioStep,
    SendStatus,
    StepEnrolment,
    StepScenario,
    StepSend,
    StopReason,
    Trigger,
)
from saas.steps.timing import UNITS, SendWindow, due_at

KEY = re.compile(r"^[a-z0-9][a-z0-9_-]{0,59}$")
CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
CONSENTS = ("marketing", "reminders")


PROBLEM_TEXTS = {
    "name": _l("シナリオ名を入力してください（120文字以内）。"),
    "key": _l("キーは半角英小文字・数字・-・_ で入力してください。"),
    "duplicate": _l("同じキーのシナリオがすでにあります。"),
    "trigger": _l("開始のきっかけを選んでください。"),
    "trigger_tag": _l("開始するタグを選んでください。"),
    "window": _l("配信する時間帯を「09:00」の形で、開始を終了より前にしてください。"),
    "delay": _l("待ち時間を0以上の数で入力してください。"),
    "at_time": _l("送信時刻を「10:00」の形で入力してください。"),
    "messages": _l("メッセージは5件までです。"),
    "empty": _l("メッセージかアクションを1つ以上設定してください。"),
    "no_steps": _l("ステップが1つもないシナリオは開始できません。"),
    "status": _l("この状態には変更できません。"),
    "condition": _l("条件の行で、対象のタグ・項目・流入経路を選んでください（使わない行は種類を空にします）。"),
    "action": _l("アクションの行で、対象を選んでください（使わない行は種類を空にします）。"),
}


class ScenarioProblem(ValueError):
    """What is wrong with a scenario or step as entered (shown to staff)."""


def all_scenarios() -> list[StepScenario]:
    return list(db.session.scalars(sa.select(StepScenario).order_by(StepScenario.id)))


def get_by_key(key: str) -> StepScenario | None:
    return db.session.scalar(sa.select(StepScenario).where(StepScenario.key == key))


def _clock_or_problem(text: str, what: str) -> str:
    text = (text or "").strip()
    if not CLOCK.match(text):
        raise ScenarioProblem(what)
    return text


def save_scenario(scenario: StepScenario, values: dict) -> StepScenario:
    """Validate and store a scenario's settings (the caller commits)."""
    name, key = (values.get("name") or "").strip(), (values.get("key") or "").strip().lower()
    if not name or len(name) > 120:
        raise ScenarioProblem("name")
    if not KEY.match(key):
        raise ScenarioProblem("key")
    clash = sa.select(StepScenario.id).where(StepScenario.key == key, StepScenario.id != (scenario.id or 0))
    if db.session.scalar(clash) is not None:
        raise ScenarioProblem("duplicate")
    trigger = values.get("trigger") or Trigger.MANUAL
    if trigger not in tuple(Trigger):
        raise ScenarioProblem("trigger")
    send_from = _clock_or_problem(values.get("send_from") or "09:00", "window")
    send_until = _clock_or_problem(values.get("send_until") or "20:00", "window")
    if send_from >= send_until:
        raise ScenarioProblem("window")
    scenario.name, scenario.key, scenario.trigger = name, key, trigger
    scenario.description = (values.get("description") or "").strip()[:2000]
    scenario.trigger_tag_id = _int(values.get("trigger_tag_id")) if trigger == Trigger.TAG else None
    scenario.trigger_source_id = _int(values.get("trigger_source_id")) if trigger == Trigger.FOLLOW else None
    if trigger == Trigger.TAG and not scenario.trigger_tag_id:
        raise ScenarioProblem("trigger_tag")
    scenario.goals = clean_goals(values.get("goals") or [])
    scenario.allow_restart = bool(values.get("allow_restart"))
    scenario.resume_on_refollow = bool(values.get("resume_on_refollow"))
    scenario.open_days_only = bool(values.get("open_days_only"))
    scenario.consent = values.get("consent") if values.get("consent") in CONSENTS else "marketing"
    scenario.send_from, scenario.send_until = send_from, send_until
    db.session.add(scenario)
    db.session.flush()
    return scenario


def _int(value) -> int | None:
    return parse_id(value or "")


def clean_goals(goals: list) -> list[dict]:
    """Goals as stored: known kinds, ids as integers."""
    cleaned = []
    for goal in goals:
        if not isinstance(goal, dict) or goal.get("kind") not in (
            "booked",
            "visited",
            "tag",
            "coupon_used",
            "form_answered",
        ):
            continue
        entry = {"kind": goal["kind"]}
        entry.update({k: _int(v) for k, v in goal.items() if k.endswith("_id") and _int(v)})
        if entry["kind"] == "tag" and "tag_id" not in entry:
            continue
        cleaned.append(entry)
    return cleaned


def save_step(step: ScenarioStep, scenario: StepScenario, values: dict, messages: list[dict]) -> ScenarioStep:
    """Validate and store a step (messages already checked by the composer). The caller commits."""
    if values.get("unfinished"):
        raise ScenarioProblem(values["unfinished"])
    kind = values.get("delay_kind") or DelayKind.AFTER_PREVIOUS
    if kind not in tuple(DelayKind):
        raise ScenarioProblem("delay")
    amount = _int(values.get("delay_value"))
    if amount is None or amount > 365 * 24 * 60:
        raise ScenarioProblem("delay")
    unit = values.get("delay_unit") or "days"
    if unit not in UNITS:
        raise ScenarioProblem("delay")
    if len(messages) > MAX_MESSAGES:
        raise ScenarioProblem("messages")
    step.scenario_id, step.clinic_id = scenario.id, scenario.clinic_id
    step.name = (values.get("name") or "").strip()[:120]
    step.delay_kind, step.delay_value, step.delay_unit = kind, amount, unit
    step.at_time = (
        _clock_or_problem(values.get("at_time") or "10:00", "at_time") if kind == DelayKind.DAY_AT else "10:00"
    )
    step.messages = messages
    step.conditions = values.get("conditions") or {}
    step.otherwise = "goto" if values.get("otherwise") == "goto" and _int(values.get("goto_step_id")) else "skip"
    step.goto_step_id = _int(values.get("goto_step_id")) if step.otherwise == "goto" else None
    step.actions = [a for a in values.get("actions") or [] if isinstance(a, dict) and a.get("kind") in ACTION_KINDS]
    if not step.messages and not step.actions:
        raise ScenarioProblem("empty")
    if step.id is None:
        step.position = len(enrolments.steps_of(scenario.id))
    db.session.add(step)
    db.session.flush()
    return step


def move_step(step: ScenarioStep, offset: int) -> None:
    """Swap the step with its neighbour (offset -1: earlier, +1: later). The caller commits."""
    steps = enrolments.steps_of(step.scenario_id)
    index = next(i for i, s in enumerate(steps) if s.id == step.id)
    other = index + offset
    if 0 <= other < len(steps):
        steps[index], steps[other] = steps[other], steps[index]
    for position, each in enumerate(steps):
        each.position = position


def delete_step(step: ScenarioStep) -> None:
    """Delete a step; friends waiting for it go on with the next one at their next tick."""
    scenario_id = step.scenario_id
    db.session.delete(step)
    db.session.flush()
    for position, each in enumerate(enrolments.steps_of(scenario_id)):
        each.position = position


def set_status(scenario: StepScenario, status: str) -> None:
    """Activate, pause (everybody waits where they are) or resume. The caller commits."""
    if status == ScenarioStatus.ACTIVE and not enrolments.steps_of(scenario.id):
        raise ScenarioProblem("no_steps")
    if status == ScenarioStatus.PAUSED and scenario.status == ScenarioStatus.ACTIVE:
        enrolments.pause_scenario(scenario)
    elif status == ScenarioStatus.ACTIVE and scenario.status == ScenarioStatus.PAUSED:
        enrolments.resume_scenario(scenario)
    elif status in (ScenarioStatus.ACTIVE, ScenarioStatus.DRAFT):
        scenario.status = status
    else:
        raise ScenarioProblem("status")


# --- figures ----------------------------------------------------------------------------------


@dataclass
class Funnel:
    """Who entered a scenario, reached each step, reached the goal, blocked on the way."""

    started: int = 0
    running: int = 0
    completed: int = 0
    goal: int = 0
    unfollowed: int = 0
    stopped: int = 0
    steps: list[tuple[ScenarioStep, int, int]] = field(default_factory=list)  # step, sent, skipped


def funnel(scenario: StepScenario) -> Funnel:
    """The scenario's funnel in two grouped queries."""
    rows = db.session.execute(
        sa.select(
            sa.func.count(StepEnrolment.id),
            sa.func.count(StepEnrolment.id).filter(StepEnrolment.status.in_(enrolments.RUNNING)),
            sa.func.count(StepEnrolment.id).filter(StepEnrolment.status == EnrolmentStatus.COMPLETED),
            sa.func.count(StepEnrolment.id).filter(StepEnrolment.stop_reason == StopReason.GOAL),
            sa.func.count(StepEnrolment.id).filter(StepEnrolment.unfollowed_at.is_not(None)),
            sa.func.count(StepEnrolment.id).filter(StepEnrolment.stop_reason == StopReason.MANUAL),
        ).where(StepEnrolment.scenario_id == scenario.id)
    ).one()
    figures = Funnel(*(int(v or 0) for v in rows))
    per_step = db.session.execute(
        sa.select(StepSend.step_id, StepSend.status, sa.func.count(StepSend.id))
        .where(StepSend.scenario_id == scenario.id)
        .group_by(StepSend.step_id, StepSend.status)
    ).all()
    counts = {(step_id, status): n for step_id, status, n in per_step}
    figures.steps = [
        (s, counts.get((s.id, SendStatus.SENT), 0), counts.get((s.id, SendStatus.SKIPPED), 0))
        for s in enrolments.steps_of(scenario.id)
    ]
    return figures


@dataclass
class Progress:
    scenario: StepScenario
    enrolment: StepEnrolment
    sends: list[StepSend]
    next_step: ScenarioStep | None


def progress_for_friend(friend: Friend) -> list[Progress]:
    """The friend's runs through scenarios, newest first, with what each step did."""
    runs = db.session.scalars(
        sa.select(StepEnrolment).where(StepEnrolment.friend_id == friend.id).order_by(StepEnrolment.id.desc()).limit(20)
    ).all()
    if not runs:
        return []
    sends = db.session.scalars(
        sa.select(StepSend).where(StepSend.enrolment_id.in_([r.id for r in runs])).order_by(StepSend.id)
    ).all()
    found = []
    for run in runs:
        mine = [s for s in sends if s.enrolment_id == run.id]
        upcoming = db.session.get(ScenarioStep, run.current_step_id) if run.current_step_id else None
        found.append(Progress(db.session.get(StepScenario, run.scenario_id), run, mine, upcoming))
    return found


# --- preview ----------------------------------------------------------------------------------


@dataclass
class PreviewStep:
    step: ScenarioStep
    at: datetime  # clinic local time
    messages: list[dict]
    conditional: bool


def preview(scenario: StepScenario, clinic, start: datetime | None = None) -> list[PreviewStep]:
    """The scenario as a patient would see it, for someone starting at ``start`` (naive UTC; default
    today at 12:00 clinic time), every condition met: times shifted into the send window."""
    zone = zone_of(clinic)
    if start is None:
        today = to_local(utcnow(), zone).replace(hour=12, minute=0, second=0, microsecond=0)
        start = to_utc(today, zone)
    sample = StepEnrolment(started_at=start, last_step_at=None)
    window, context, shown = SendWindow(clinic, scenario), sample_context(clinic), []
    moment = start
    for step in enrolments.steps_of(scenario.id):
        moment = due_at(step, sample, window, moment)
        sample.last_step_at = moment
        rendered = render(step.messages or [], context)
        shown.append(PreviewStep(step, to_local(moment, zone), rendered, bool((step.conditions or {}).get("rules"))))
    return shown


# --- starting by hand ------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentCheck:
    matched: int
    eligible: int  # following, with the scenario's consent
    messages_needed: int  # if each of them receives every step
    remaining: int | None  # this month's quota left (None: no cap of ours)

    @property
    def fits(self) -> bool:
        return self.remaining is None or self.messages_needed <= self.remaining


def _segment_friends(segment: dict):
    return sa.select(Friend).where(Friend.status == FriendStatus.FOLLOWING, *audience.segment_filters(segment))


def check_segment(scenario: StepScenario, segment: dict) -> SegmentCheck:
    """How many friends the segment holds, how many would receive the scenario, and the quota."""
    counts = audience.count_audience("segment", segment)
    steps_with_messages = sum(1 for s in enrolments.steps_of(scenario.id) if s.messages)
    needed = counts.eligible * steps_with_messages
    return SegmentCheck(counts.matched, counts.eligible, needed, usage(scenario.clinic_id).remaining)


def start_for_segment(scenario: StepScenario, segment: dict) -> int:
    """Start the scenario for every following friend of the segment; how many started. Commits per 500."""
    started = 0
    after = 0
    while True:
        batch = db.session.scalars(
            _segment_friends(segment).where(Friend.id > after).order_by(Friend.id).limit(500)
        ).all()
        if not batch:
            return started
        for friend in batch:
            started += enrolments.start(friend, scenario, "segment") is not None
        after = batch[-1].id
        db.session.commit()


def test_send(scenario: StepScenario, friend: Friend) -> int:
    """Every step's messages to one friend now (a staff member's own LINE, a sandbox patient), as
    1:1 pushes through the pipeline; no enrolment is made. Returns the number of sends queued."""
    queued = 0
    for step in enrolments.steps_of(scenario.id):
        if not step.messages:
            continue
        title = f"テスト送信: {scenario.name}・{step.name or step.position + 1}"[:200]
        sending = delivery.create_delivery(
            messages=step.messages, kind=DeliveryKind.PUSH, title=title, friend_id=friend.id
        )
        delivery.submit(sending)
        queued += 1
    return queued
