"""The public API of step delivery: what starts a scenario for a friend, and what stops it.

Other capabilities call these (current tenant scope; they flush, the caller commits)::

    from saas.steps import triggers

    triggers.on_goal(friend, "coupon_used", coupon_id=coupon.id)   # coupons
    triggers.on_goal(friend, "form_answered", form_id=form.id)     # forms
    triggers.start(friend, scenario, "manual")

A scenario's goals are data (``[{"kind": "booked"}, {"kind": "tag", "tag_id": 4},
{"kind": "form_answered", "form_id": 2}]``): a goal matches a call of the same kind when every id
it names equals the one given (a goal without ids matches any). Follow, unfollow, tags,
bookings and postbacks are wired in ``saas/steps/events.py``.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from saas.extensions import db
from saas.friends.models import Friend
from saas.steps import enrolments
from saas.steps.models import ScenarioStatus, StepEnrolment, StepScenario, StopReason, Trigger

GOAL_KINDS = ("booked", "visited", "tag", "coupon_used", "form_answered")
POSTBACK_PREFIX = "steps:start:"


def start(friend: Friend, scenario: StepScenario, reason: str = "manual", *, now: datetime | None = None):
    """Start ``scenario`` for ``friend``; the new :class:`StepEnrolment`, or None when it does not start
    (scenario not active, friend not following, already in it, or done before without restarts)."""
    return enrolments.start(friend, scenario, reason, now=now)


def stop(friend: Friend, scenario: StepScenario, reason: str = StopReason.MANUAL) -> bool:
    """Take the friend out of the scenario now; False when they were not in it."""
    return enrolments.stop_when(friend, lambda s: s.id == scenario.id, reason) > 0


def goal_matches(goal: dict, kind: str, context: dict) -> bool:
    """Whether one of a scenario's goals is reached by an event of ``kind`` with these ids."""
    if not isinstance(goal, dict) or goal.get("kind") != kind:
        return False
    named = {k: v for k, v in goal.items() if k != "kind" and v not in (None, "")}
    return all(str(context.get(k)) == str(v) for k, v in named.items())


def on_goal(friend: Friend, kind: str, **context) -> int:
    """The friend did something a scenario may aim at (booked, tag, coupon used, form answered):
    every running scenario with a matching goal stops for them (「ゴール達成」). Returns how many."""
    return enrolments.stop_when(
        friend, lambda s: any(goal_matches(g, kind, context) for g in s.goals or []), StopReason.GOAL
    )


def _active(trigger: str, *conditions) -> list[StepScenario]:
    query = sa.select(StepScenario).where(
        StepScenario.status == ScenarioStatus.ACTIVE, StepScenario.trigger == trigger, *conditions
    )
    return list(db.session.scalars(query.order_by(StepScenario.id)))


def _start_all(friend: Friend, scenarios: list[StepScenario], reason: str) -> list[StepEnrolment]:
    started = [enrolments.start(friend, scenario, reason) for scenario in scenarios]
    return [e for e in started if e is not None]


def on_follow(friend: Friend) -> list[StepEnrolment]:
    """A follow: scenarios stopped by the unfollow resume where the clinic wants it, and the
    scenarios for every new friend start (those tied to an inflow source start from :func:`on_source`)."""
    enrolments.resume_after_refollow(friend)
    return _start_all(friend, _active(Trigger.FOLLOW, StepScenario.trigger_source_id.is_(None)), "follow")


def on_source(friend: Friend, source_id: int) -> list[StepEnrolment]:
    """The friend was brought by this inflow source (QR code): its scenarios start."""
    return _start_all(friend, _active(Trigger.FOLLOW, StepScenario.trigger_source_id == source_id), "source")


def on_unfollow(friend: Friend) -> int:
    """The friend blocked the clinic: running scenarios stop (and count as 「ブロック」)."""
    return enrolments.stop_unfollowed(friend)


def on_tag_added(friend: Friend, tag) -> list[StepEnrolment]:
    """A tag was added: scenarios with it as goal stop, scenarios started by it start."""
    on_goal(friend, "tag", tag_id=tag.id)
    return _start_all(friend, _active(Trigger.TAG, StepScenario.trigger_tag_id == tag.id), "tag")


def on_booking_made(friend: Friend, booking_id: int | None = None) -> list[StepEnrolment]:
    on_goal(friend, "booked", booking_id=booking_id)
    return _start_all(friend, _active(Trigger.BOOKING_MADE), "booking_made")


def on_booking_completed(friend: Friend, booking_id: int | None = None) -> list[StepEnrolment]:
    on_goal(friend, "visited", booking_id=booking_id)
    return _start_all(friend, _active(Trigger.BOOKING_COMPLETED), "booking_completed")


def on_postback(friend: Friend, data: str) -> StepEnrolment | None:
    """A rich-menu area or button with data ``steps:start:<scenario key>`` was tapped."""
    key = data.removeprefix(POSTBACK_PREFIX).strip()
    scenario = next(iter(_active(Trigger.POSTBACK, StepScenario.key == key)), None)
    return enrolments.start(friend, scenario, "postback") if scenario else None
