"""Friends' background jobs: fetching patients' media, re-syncing the friend list with LINE."""

from __future__ import annotations

import logging

import sqlalchemy as sa

from saas.extensions import db
from saas.friends import media, resync
from saas.friends.models import MessageMedia
from saas.jobs import job
from saas.queues import DEFAULT, get_queue
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope

log = logging.getLogger(__name__)


@job
def fetch_message_media(media_id: int, clinic_id: int) -> str:
    """Fetch one image/video/audio/file from LINE's content API and store it encrypted."""
    with tenant_scope(clinic_id):
        row = db.session.get(MessageMedia, media_id)
        if row is None:
            return "gone"
        media.fetch(db.session.get(Clinic, clinic_id), row)
        return row.state


@job
def resync_friends(clinic_id: int) -> int:
    """Add friends LINE knows and we do not (their follow webhook never arrived); no greeting."""
    with tenant_scope(clinic_id):
        return resync.resync_followers(db.session.get(Clinic, clinic_id))


@job
def resync_all_friends() -> int:
    """Daily: one re-sync job per clinic with a connected channel."""
    with platform_scope("daily friend re-sync"):
        clinic_ids = db.session.scalars(sa.select(Clinic.id).where(Clinic.line_access_token.is_not(None))).all()
    queue = get_queue(DEFAULT)
    for clinic_id in clinic_ids:
        queue.enqueue(resync_friends, clinic_id, job_id=f"resync-friends-{clinic_id}")
    return len(clinic_ids)
