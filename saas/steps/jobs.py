"""The step delivery tick (RQ cron, every minute) and its per-clinic job."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from saas.extensions import db
from saas.jobs import job
from saas.queues import DEFAULT, get_queue
from saas.steps import clock, runner
from saas.steps.models import SendStatus, StepEnrolment, StepSend
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope


def due_clinic_ids(now: datetime) -> list[int]:
    """Clinics with a step due or a step delivery in flight (two index ranges: the due rows only)."""
    due = sa.select(StepEnrolment.clinic_id).where(StepEnrolment.next_due_at <= now)
    in_flight = sa.select(StepSend.clinic_id).where(StepSend.status == SendStatus.SENDING)
    return sorted(set(db.session.scalars(due.distinct())) | set(db.session.scalars(in_flight.distinct())))


@job
def run_due_steps(now: datetime | None = None) -> int:
    """Queue one job per clinic with due steps (cron, every minute). Safe to run twice."""
    now = now or clock.now()
    with platform_scope("step delivery tick"):
        clinic_ids = due_clinic_ids(now)
    queue = get_queue(DEFAULT)
    for clinic_id in clinic_ids:
        queue.enqueue(run_clinic_steps, clinic_id, now)
    return len(clinic_ids)


@job
def run_clinic_steps(clinic_id: int, now: datetime | None = None) -> dict:
    """Do the clinic's due steps and settle its ended step deliveries. Safe to run twice, or at once."""
    with tenant_scope(clinic_id):
        clinic = db.session.get(Clinic, clinic_id)
        return runner.run_clinic(clinic, now or clock.now()) if clinic else {}
