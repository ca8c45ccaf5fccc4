"""Scheduled work for data retention."""

from __future__ import annotations

from saas.jobs import job
from saas.retention import services


@job
def purge_expired_data() -> dict:
    """RQ job (daily): apply every clinic's retention settings. Safe to run twice; commits itself."""
    done = services.purge_all()
    return {
        "webhook_events": done.webhook_events,
        "delivery_recipients": done.delivery_recipients,
        "message_bodies": done.message_bodies,
        "message_receipts": done.message_receipts,
        "link_clicks": done.link_clicks,
    }
