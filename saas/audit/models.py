"""The audit trail. Rows are written once and never changed; only the retention purge deletes.

``AuditEvent`` is deliberately NOT ``TenantOwned``: login and platform events belong to no
clinic. Every read therefore scopes explicitly (``services.events_for_clinics``). The clinic
and actor ids carry no foreign keys so that the trail outlives deleted clinics and users.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, Session, mapped_column

from saas.common import BigId, utcnow
from saas.extensions import db


class AuditLogImmutable(RuntimeError):
    """An audit event was about to be changed or deleted outside the retention purge."""


class AuditEvent(db.Model):
    __tablename__ = "audit_event"
    __table_args__ = (
        sa.Index("ix_audit_event_clinic_recent", "clinic_id", "created_at", "id"),  # the keyset-paged log
        sa.Index("ix_audit_event_clinic_action", "clinic_id", "action"),  # the filter menu's actions
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    clinic_id: Mapped[int | None] = mapped_column(index=True)
    actor_user_id: Mapped[int | None] = mapped_column(index=True)
    actor_email: Mapped[str] = mapped_column(sa.String(254), default="")
    action: Mapped[str] = mapped_column(sa.String(64), index=True)
    target_type: Mapped[str] = mapped_column(sa.String(64), default="")
    target_id: Mapped[str | None] = mapped_column(sa.String(64))
    details: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    ip: Mapped[str] = mapped_column(sa.String(64), default="")
    user_agent: Mapped[str] = mapped_column(sa.String(400), default="")


_purging: ContextVar[bool] = ContextVar("audit_purging", default=False)


@contextmanager
def retention_purge():
    """The one block in which audit events may be deleted (see ``services.purge_expired``)."""
    token = _purging.set(True)
    try:
        yield
    finally:
        _purging.reset(token)


@event.listens_for(AuditEvent, "before_update")
def _refuse_update(mapper, connection, target) -> None:
    raise AuditLogImmutable("audit events are append-only")


@event.listens_for(AuditEvent, "before_delete")
def _refuse_delete(mapper, connection, target) -> None:
    if not _purging.get():
        raise AuditLogImmutable("audit events are deleted only by the retention purge")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(execute_state) -> None:
    """Bulk ``update(AuditEvent)`` / ``delete(AuditEvent)`` go around the mapper events."""
    if not (execute_state.is_update or execute_state.is_delete):
        return
    if not any(mapper.class_ is AuditEvent for mapper in execute_state.all_mappers):
        return
    if execute_state.is_update or not _purging.get():
        raise AuditLogImmutable("audit events are append-only")


from saas.audit import changes as _changes  # noqa: E402,F401  (settings changes are audited from the ORM)
