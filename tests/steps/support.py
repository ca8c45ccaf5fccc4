"""Helpers for step delivery tests: scenarios built as data, the tick under a fixed clock."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import sqlalchemy as sa

from saas.common import JAPAN, to_utc
from saas.extensions import db
from saas.friends.models import Friend, Message
from saas.steps import clock, jobs
from saas.steps.models import ScenarioStep, StepEnrolment, StepScenario
from saas.tenancy.scoping import tenant_scope
from tests.delivery.support import drain


def japan(day: date, hour: int, minute: int = 0) -> datetime:
    """A Japan wall-clock time as the naive UTC the database keeps."""
    return to_utc(datetime.combine(day, time(hour, minute)), JAPAN)


def scenario(clinic, name: str = "初診後フォロー", steps: list[dict] = (), **settings) -> int:
    """An active scenario with these steps (dicts of ScenarioStep fields); its id."""
    with tenant_scope(clinic.id):
        row = StepScenario(
            clinic_id=clinic.id,
            key=settings.pop("key", f"s{abs(hash(name)) % 10**8}"),
            name=name,
            status=settings.pop("status", "active"),
            consent=settings.pop("consent", "reminders"),
            **settings,
        )
        db.session.add(row)
        db.session.flush()
        for position, step in enumerate(steps):
            db.session.add(ScenarioStep(clinic_id=clinic.id, scenario_id=row.id, position=position, **step))
        db.session.commit()
        return row.id


def text(body: str) -> list[dict]:
    return [{"type": "text", "text": body}]


def tick(at: datetime, times: int = 2) -> None:
    """The cron tick at ``at`` and every job it causes, twice (the second settles the first's sends)."""
    with clock.frozen(at):
        for _ in range(times):
            jobs.run_due_steps(at)
            drain()


def received(sandbox, channel: str, patient: str) -> list[str]:
    return [m["message"].get("text", "") for m in sandbox.inbox(channel, patient) if m["message"].get("type") == "text"]


def enrolment(clinic, scenario_id: int, line_user_id: str) -> StepEnrolment | None:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        friend_id = db.session.scalar(sa.select(Friend.id).where(Friend.line_user_id == line_user_id))
        query = sa.select(StepEnrolment).where(
            StepEnrolment.scenario_id == scenario_id, StepEnrolment.friend_id == friend_id
        )
        found = db.session.scalars(query.order_by(StepEnrolment.id.desc())).first()
        if found is not None:
            db.session.expunge(found)
        return found


def conversation_texts(clinic, line_user_id: str) -> list[str]:
    with tenant_scope(clinic.id):
        friend_id = db.session.scalar(sa.select(Friend.id).where(Friend.line_user_id == line_user_id))
        query = sa.select(Message.text).where(Message.friend_id == friend_id, Message.direction == "out")
        return list(db.session.scalars(query.order_by(Message.id)))


def next_day(day: date, days: int = 1) -> date:
    return day + timedelta(days=days)
