"""Putting friends into scenarios and taking them out (current tenant scope; callers commit).

A friend runs through a scenario at most once at a time: the partial unique index on
(scenario, friend) for running rows decides between two starts at once. Without
``allow_restart`` a friend goes through a scenario once; with it a new start begins again
from the first step (the running one ends as 「再開始」).
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from saas.extensions import db
from saas.friends.models import Friend
from saas.steps import clock
from saas.steps.models import (
    EnrolmentStatus,
    ScenarioStatus,
    ScenarioStep,
    SendStatus,
    StepEnrolment,
    StepScenario,
    StepSend,
    StopReason,
)
from saas.steps.timing import SendWindow, due_at
from saas.tenancy.models import Clinic

log = logging.getLogger(__name__)
RUNNING = (EnrolmentStatus.ACTIVE, EnrolmentStatus.PAUSED)


def steps_of(scenario_id: int) -> list[ScenarioStep]:
    """The scenario's steps in order."""
    query = sa.select(ScenarioStep).where(ScenarioStep.scenario_id == scenario_id)
    return list(db.session.scalars(query.order_by(ScenarioStep.position, ScenarioStep.id)))


def window_for(scenario: StepScenario) -> SendWindow:
    return SendWindow(db.session.get(Clinic, scenario.clinic_id), scenario)


def running_enrolment(scenario_id: int, friend_id: int) -> StepEnrolment | None:
    query = sa.select(StepEnrolment).where(
        StepEnrolment.scenario_id == scenario_id,
        StepEnrolment.friend_id == friend_id,
        StepEnrolment.status.in_(RUNNING),
    )
    return db.session.scalar(query)


def _ever_enrolled(scenario_id: int, friend_id: int) -> bool:
    query = sa.select(StepEnrolment.id).where(
        StepEnrolment.scenario_id == scenario_id, StepEnrolment.friend_id == friend_id
    )
    return db.session.scalar(query.limit(1)) is not None


def start(friend: Friend, scenario: StepScenario, reason: str, *, now: datetime | None = None) -> StepEnrolment | None:
    """Start the scenario for the friend; None when it does not start (not active, already in it, ...)."""
    now = now or clock.now()
    if scenario.status != ScenarioStatus.ACTIVE or not friend.is_following:
        return None
    steps = steps_of(scenario.id)
    running = running_enrolment(scenario.id, friend.id)
    if not steps or (running is not None and not scenario.allow_restart):
        return None
    if running is None and not scenario.allow_restart and _ever_enrolled(scenario.id, friend.id):
        return None
    if running is not None:
        end(running, EnrolmentStatus.STOPPED, StopReason.RESTARTED, now)
        db.session.flush()
    enrolment = StepEnrolment(
        clinic_id=scenario.clinic_id,
        scenario_id=scenario.id,
        friend_id=friend.id,
        status=EnrolmentStatus.ACTIVE,
        start_reason=reason[:32],
        started_at=now,
        current_step_id=steps[0].id,
    )
    enrolment.next_due_at = due_at(steps[0], enrolment, window_for(scenario), now)
    try:
        with db.session.begin_nested():
            db.session.add(enrolment)
    except IntegrityError:  # started at the same moment by another worker
        return None
    return enrolment


def end(enrolment: StepEnrolment, status: str, reason: str, now: datetime | None = None) -> None:
    """Take the friend out of the scenario (completed or stopped, with why)."""
    enrolment.status, enrolment.stop_reason = status, reason
    enrolment.ended_at, enrolment.next_due_at = now or clock.now(), None
    if status == EnrolmentStatus.COMPLETED:
        enrolment.current_step_id = None


def running_for_friend(friend_id: int) -> list[StepEnrolment]:
    query = sa.select(StepEnrolment).where(StepEnrolment.friend_id == friend_id, StepEnrolment.status.in_(RUNNING))
    return list(db.session.scalars(query))


def stop_when(friend: Friend, wanted, reason: str, now: datetime | None = None) -> int:
    """Stop the friend's running enrolments whose scenario satisfies ``wanted(scenario)``; how many."""
    stopped = 0
    for enrolment in running_for_friend(friend.id):
        scenario = db.session.get(StepScenario, enrolment.scenario_id)
        if wanted(scenario):
            end(enrolment, EnrolmentStatus.STOPPED, reason, now)
            stopped += 1
    return stopped


def stop_unfollowed(friend: Friend, now: datetime | None = None) -> int:
    """The friend blocked the clinic: every running enrolment stops where it is (for a resume)."""
    now = now or clock.now()
    enrolments = running_for_friend(friend.id)
    for enrolment in enrolments:
        end(enrolment, EnrolmentStatus.STOPPED, StopReason.UNFOLLOWED, now)
        enrolment.unfollowed_at = now
    return len(enrolments)


def resume_after_refollow(friend: Friend, now: datetime | None = None) -> int:
    """On a re-follow, scenarios that say so go on from the step the friend had reached."""
    now = now or clock.now()
    query = (
        sa.select(StepEnrolment)
        .join(StepScenario, StepScenario.id == StepEnrolment.scenario_id)
        .where(
            StepEnrolment.friend_id == friend.id,
            StepEnrolment.status == EnrolmentStatus.STOPPED,
            StepEnrolment.stop_reason == StopReason.UNFOLLOWED,
            StepScenario.resume_on_refollow.is_(True),
            StepScenario.status == ScenarioStatus.ACTIVE,
        )
    )
    resumed = 0
    for enrolment in db.session.scalars(query):
        if running_enrolment(enrolment.scenario_id, friend.id) is None and _resume(enrolment, now):
            resumed += 1
    return resumed


def _resume(enrolment: StepEnrolment, now: datetime) -> bool:
    step = db.session.get(ScenarioStep, enrolment.current_step_id or 0)
    if step is None:
        return False
    scenario = db.session.get(StepScenario, enrolment.scenario_id)
    enrolment.status, enrolment.stop_reason, enrolment.ended_at = EnrolmentStatus.ACTIVE, "", None
    enrolment.next_due_at = due_at(step, enrolment, window_for(scenario), now)
    db.session.flush()
    return True


def pause_scenario(scenario: StepScenario) -> int:
    """Nobody moves on while paused; each friend keeps the step they reached."""
    scenario.status = ScenarioStatus.PAUSED
    changed = db.session.execute(
        sa.update(StepEnrolment)
        .where(StepEnrolment.scenario_id == scenario.id, StepEnrolment.status == EnrolmentStatus.ACTIVE)
        .values(status=EnrolmentStatus.PAUSED, next_due_at=None),
        execution_options={"synchronize_session": False},
    )
    return changed.rowcount


def resume_scenario(scenario: StepScenario, now: datetime | None = None) -> int:
    """Active again: every paused friend's next step is due from now (inside the window)."""
    now = now or clock.now()
    scenario.status = ScenarioStatus.ACTIVE
    steps = {step.id: step for step in steps_of(scenario.id)}
    window = window_for(scenario)
    in_flight = sa.select(StepSend.enrolment_id).where(
        StepSend.scenario_id == scenario.id, StepSend.status == SendStatus.SENDING
    )
    query = sa.select(StepEnrolment).where(
        StepEnrolment.scenario_id == scenario.id,
        StepEnrolment.status == EnrolmentStatus.PAUSED,
        StepEnrolment.id.not_in(in_flight),  # its send finishes first, then the next step is timed
    )
    count = 0
    for enrolment in db.session.scalars(query):
        step = steps.get(enrolment.current_step_id or 0)
        enrolment.status = EnrolmentStatus.ACTIVE
        enrolment.next_due_at = due_at(step, enrolment, window, now) if step else now
        count += 1
    db.session.execute(  # sends still in flight: active again, timed when their send finishes
        sa.update(StepEnrolment)
        .where(StepEnrolment.scenario_id == scenario.id, StepEnrolment.status == EnrolmentStatus.PAUSED)
        .values(status=EnrolmentStatus.ACTIVE),
        execution_options={"synchronize_session": False},
    )
    return count
