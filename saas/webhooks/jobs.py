"""Workers' side of webhooks: apply each stored event once, recording the outcome on its row."""

from __future__ import annotations

import logging
from datetime import timedelta

import sqlalchemy as sa

from saas.common import utcnow
from saas.extensions import db
from saas.jobs import job
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import tenant_scope
from saas.webhooks.models import EventState, WebhookEvent

log = logging.getLogger(__name__)

# A claim older than this is considered abandoned (worker died) and may be taken again.
CLAIM_TIMEOUT = timedelta(minutes=5)


def _claim(event_row_id: int) -> bool:
    """Atomically move the event to PROCESSING; False when it is done or being handled."""
    now = utcnow()
    claimable = sa.or_(
        WebhookEvent.state.in_([EventState.PENDING, EventState.FAILED]),
        sa.and_(WebhookEvent.state == EventState.PROCESSING, WebhookEvent.claimed_at < now - CLAIM_TIMEOUT),
    )
    result = db.session.execute(
        sa.update(WebhookEvent)
        .where(WebhookEvent.id == event_row_id, claimable)
        .values(state=EventState.PROCESSING, claimed_at=now, attempts=WebhookEvent.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1


def _finish(event_row_id: int, state: str, error: str | None = None) -> None:
    db.session.execute(
        sa.update(WebhookEvent)
        .where(WebhookEvent.id == event_row_id)
        .values(state=state, error=error, handled_at=utcnow() if state == EventState.HANDLED else None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


@job
def handle_webhook_event(event_row_id: int, clinic_id: int) -> str:
    """Apply one stored LINE webhook event (follow, unfollow, message, postback). Idempotent."""
    from saas.friends import events

    with tenant_scope(clinic_id):
        if not _claim(event_row_id):
            return "skipped"
        try:
            clinic = db.session.get(Clinic, clinic_id)
            events.handle(clinic, db.session.get(WebhookEvent, event_row_id))
        except Exception as exc:
            db.session.rollback()
            log.exception("webhook event %s of clinic %s failed", event_row_id, clinic_id)
            _finish(event_row_id, EventState.FAILED, f"{type(exc).__name__}: {exc}"[:2000])
            raise
        _finish(event_row_id, EventState.HANDLED)
    return "handled"
