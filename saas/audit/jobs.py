"""Scheduled work for the audit log."""

from __future__ import annotations

from saas.audit import services
from saas.jobs import job


@job
def purge_audit_events() -> int:
    """RQ job: delete audit events past retention (safe to run twice; it commits itself)."""
    return services.purge_expired()
