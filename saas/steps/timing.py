"""When a step is due: its delay, then the scenario's send window (never at night, optionally
only on the clinic's open days). A time outside the window is moved to the next opening of the
window, never dropped."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from saas.common import to_local, to_utc, zone_of
from saas.steps.models import DelayKind, ScenarioStep, StepEnrolment, StepScenario

UNITS = {"minutes": timedelta(minutes=1), "hours": timedelta(hours=1), "days": timedelta(days=1)}
SEARCH_DAYS = 60  # a clinic closed longer than this sends on the 61st day rather than never


def clock(text: str, default: time) -> time:
    """``HH:MM`` as a time (the default when malformed)."""
    try:
        hours, minutes = (int(part) for part in (text or "").split(":"))
        return time(hours, minutes)
    except (TypeError, ValueError):
        return default


def wanted_at(step: ScenarioStep, enrolment: StepEnrolment, zone) -> datetime:
    """The step's time from its delay alone (naive UTC)."""
    if step.delay_kind == DelayKind.DAY_AT:
        start_day = to_local(enrolment.started_at, zone).date()
        local = datetime.combine(start_day + timedelta(days=max(step.delay_value, 0)), clock(step.at_time, time(10)))
        return to_utc(local, zone)
    delay = UNITS.get(step.delay_unit, UNITS["days"]) * max(step.delay_value, 0)
    if step.delay_kind == DelayKind.AFTER_START:
        return enrolment.started_at + delay
    return (enrolment.last_step_at or enrolment.started_at) + delay


class SendWindow:
    """A scenario's sending hours in the clinic's zone; open days read once per window object."""

    def __init__(self, clinic, scenario: StepScenario):
        self.clinic, self.zone = clinic, zone_of(clinic)
        self.opens = clock(scenario.send_from, time(9))
        self.closes = clock(scenario.send_until, time(20))
        self.open_days_only = scenario.open_days_only
        self._open_days: dict[date, bool] = {}

    def _is_open_day(self, day: date) -> bool:
        if not self.open_days_only:
            return True
        if day not in self._open_days:
            from saas.schedule.services import hours_between

            for hours in hours_between(self.clinic, day, day + timedelta(days=SEARCH_DAYS)):
                self._open_days[hours.day] = hours.is_open
        return self._open_days.get(day, True)

    def earliest(self, moment: datetime) -> datetime:
        """The first time at or after ``moment`` (naive UTC) inside the window (naive UTC)."""
        local = to_local(moment, self.zone)
        for _ in range(SEARCH_DAYS):
            day = local.date()
            if self._is_open_day(day) and local.time() < self.closes:
                return to_utc(max(local, datetime.combine(day, self.opens)), self.zone)
            local = datetime.combine(day + timedelta(days=1), self.opens)
        return to_utc(local, self.zone)

    def is_open(self, moment: datetime) -> bool:
        return self.earliest(moment) == moment


def due_at(step: ScenarioStep, enrolment: StepEnrolment, window: SendWindow, now: datetime) -> datetime:
    """When the tick should do ``step`` for this friend: never before now, always inside the window."""
    return window.earliest(max(wanted_at(step, enrolment, window.zone), now))
