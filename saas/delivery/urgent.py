"""Urgent-notice requests from the schedule (休診・代診) start their delivery as soon as they are committed.

The cron job ``pick_up_urgent_notices`` is the safety net; this hook makes it immediate.
"""

from __future__ import annotations

from flask import has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session, object_session

from saas.schedule.models import UrgentNoticeRequest

_KEY = "tsunagu_urgent_notices"


@event.listens_for(UrgentNoticeRequest, "after_insert")
def _remember(mapper, connection, target: UrgentNoticeRequest) -> None:
    session = object_session(target)
    if session is not None:
        session.info.setdefault(_KEY, []).append((target.id, target.clinic_id))


@event.listens_for(Session, "after_commit")
def _enqueue(session: Session) -> None:
    pending = session.info.pop(_KEY, None)
    if not pending or not has_app_context():
        return
    from saas.delivery.jobs import deliver_urgent_notice
    from saas.queues import get_queue

    for request_id, clinic_id in pending:
        get_queue("urgent").enqueue(deliver_urgent_notice, request_id, clinic_id)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_KEY, None)
