"""Scheduled work of the API."""

from __future__ import annotations

from saas.api import idempotency
from saas.jobs import job


@job
def purge_idempotency_keys() -> int:
    """RQ job: forget Idempotency-Key answers older than a day (safe to run twice; commits itself)."""
    return idempotency.purge_expired()
