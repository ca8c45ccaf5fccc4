"""The step delivery tick (RQ cron, every minute) and its per-clinic job."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from saas.extensions import db
from saas.jobs import job
from saas.queues import DEFAULT, get_queue
from saas.steps import clock, runner
from saas.steps.models import SendStatus, StepSend
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope


def clinics_in_flight() -> set[int]:
    """Clinics with a step delivery not yet settled (a few rows of the open-sends index)."""
    query = sa.select(StepSend.clinic_id).where(StepSend.status == SendStatus.SENDING).distinct()
    return set(db.session.scalars(query))


@job
def run_due_steps(now: datetime | None = None) -> int:
    """The tick (cron, every minute): one read of everything due, then one job per clinic with its
    due enrolments (or sends to settle). Safe to run twice: the jobs claim before they send."""
    now = now or clock.now()
    with platform_scope("step delivery tick"):
        work = runner.due_work(now)
        clinic_ids = sorted(set(work) | clinics_in_flight())
    queue = get_queue(DEFAULT)
    for clinic_id in clinic_ids:
        groups = [(scenario_id, step_id, ids) for (scenario_id, step_id), ids in work.get(clinic_id, {}).items()]
        queue.enqueue(run_clinic_steps, clinic_id, now, groups)
    return len(clinic_ids)


@job
def run_clinic_steps(clinic_id: int, now: datetime | None = None, groups: list | None = None) -> dict:
    """Do the clinic's due steps (``groups`` of ``(scenario id, step id, enrolment ids)`` from the tick,
    else its own scan) and settle its ended step deliveries. Safe to run twice, or at once."""
    due = None if groups is None else {(scenario_id, step_id): ids for scenario_id, step_id, ids in groups}
    with tenant_scope(clinic_id):
        clinic = db.session.get(Clinic, clinic_id)
        return runner.run_clinic(clinic, now or clock.now(), due) if clinic else {}
