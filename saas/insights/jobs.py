"""The insight jobs: LINE's statistics synced by cron, blocks attributed as they happen."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from saas.common import utcnow
from saas.extensions import db
from saas.insights import blocks, sync
from saas.jobs import job
from saas.queues import DEFAULT, get_queue
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope


def _connected(clinic_ids=None) -> list[int]:
    statement = sa.select(Clinic.id).where(Clinic.line_access_token.is_not(None))
    if clinic_ids is not None:
        statement = statement.where(Clinic.id.in_(clinic_ids))
    return list(db.session.scalars(statement))


@job
def sync_insights() -> int:
    """Cron: one ``sync_clinic_insights`` job per clinic that sent something in the last 14 days."""
    with platform_scope("insight sync: clinics with recent sends"):
        clinic_ids = _connected(sync.clinics_with_recent_sends(utcnow()))
    for clinic_id in clinic_ids:
        get_queue(DEFAULT).enqueue(sync_clinic_insights, clinic_id, job_id=f"insights-sync-{clinic_id}")
    return len(clinic_ids)


@job
def sync_clinic_insights(clinic_id: int) -> dict:
    """Ask LINE for the figures of the clinic's requests and units that are due."""
    with tenant_scope(clinic_id):
        clinic = db.session.get(Clinic, clinic_id)
        return sync.sync_clinic(clinic) if clinic and clinic.line_access_token else {}


@job
def sync_daily_insights() -> int:
    """Cron: one ``sync_clinic_daily`` job per connected clinic (yesterday's account figures)."""
    with platform_scope("insight sync: daily figures"):
        clinic_ids = _connected()
    for clinic_id in clinic_ids:
        get_queue(DEFAULT).enqueue(sync_clinic_daily, clinic_id, job_id=f"insights-daily-{clinic_id}")
    return len(clinic_ids)


@job
def sync_clinic_daily(clinic_id: int) -> int:
    """Yesterday's followers and deliveries (and unfinished days before), today's demographics."""
    with tenant_scope(clinic_id):
        clinic = db.session.get(Clinic, clinic_id)
        return sync.sync_days(clinic) if clinic and clinic.line_access_token else 0


@job
def attribute_block(clinic_id: int, friend_id: int, blocked_at: str) -> int | None:
    """Attribute one block to the delivery that preceded it (saas.insights.blocks); safe twice."""
    with tenant_scope(clinic_id):
        return blocks.attribute(friend_id, datetime.fromisoformat(blocked_at))
