"""Adding or removing a clinic updates its payer's subscription quantity at once.

Wherever a clinic is created or deleted (manifests, the onboarding wizard, the API, a shell),
the session notices it; after the commit a job per organization sets the quantity. A lost job
is made good by the billing sweep (saas/cron.py).
"""

from __future__ import annotations

import logging

import redis
from flask import current_app, has_app_context
from sqlalchemy import event
from sqlalchemy.orm import Session

from saas.tenancy.models import Clinic

log = logging.getLogger(__name__)
_KEY = "billing_changed_organizations"


def _note_clinic_changes(session: Session, flush_context) -> None:
    changed = {c.organization_id for c in list(session.new) + list(session.deleted) if isinstance(c, Clinic)}
    if changed:
        session.info.setdefault(_KEY, set()).update(changed)


def _enqueue_quantity_syncs(session: Session) -> None:
    organization_ids = session.info.pop(_KEY, set())
    if not organization_ids or not has_app_context() or not current_app.config.get("STRIPE_SECRET_KEY"):
        return
    from saas.billing.jobs import sync_organization_quantity
    from saas.queues import get_queue

    for organization_id in sorted(organization_ids):
        try:
            get_queue("default").enqueue(sync_organization_quantity, organization_id)
        except (redis.RedisError, OSError) as error:  # the sweep catches up; a clinic is never refused for billing
            log.warning("billing: quantity sync for organization %s not enqueued: %s", organization_id, error)


def _forget(session: Session) -> None:
    session.info.pop(_KEY, None)


def install(session_class) -> None:
    """Attach the hooks to the app's session class (once, from the billing models' import)."""
    if not event.contains(session_class, "after_flush", _note_clinic_changes):
        event.listen(session_class, "after_flush", _note_clinic_changes)
        event.listen(session_class, "after_commit", _enqueue_quantity_syncs)
        event.listen(session_class, "after_rollback", _forget)
