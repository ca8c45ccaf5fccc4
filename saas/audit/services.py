"""Writing and reading the audit log.

``record`` adds the event to the caller's session, so it is committed (or rolled back) with
the action it describes. Views that only read (``conversation.view``) pass ``commit=True``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from flask import after_this_request, current_app, g, has_request_context, request

from saas.audit.models import AuditEvent, retention_purge
from saas.common import to_utc, utcnow
from saas.extensions import db

DEFAULT_RETENTION_DAYS = 1825  # 5 years; set in the 運用管理規程 and via AUDIT_RETENTION_DAYS


def _request_actor():
    from flask_login import current_user

    if has_request_context() and current_user and current_user.is_authenticated:
        return current_user
    return None


def _request_origin() -> tuple[str, str]:
    if not has_request_context():
        return "", ""
    return request.remote_addr or "", (request.user_agent.string or "")[:400]


def _request_clinic_id() -> int | None:
    if not has_request_context():
        return None
    clinic = g.get("clinic")
    return clinic.id if clinic is not None else None


def record(
    action: str,
    *,
    clinic_id: int | None = None,
    target_type: str = "",
    target_id: int | str | None = None,
    details: dict | None = None,
    actor=None,
    actor_email: str | None = None,
    commit: bool = False,
    deferred: bool = False,
) -> AuditEvent:
    """Append one event. Actor, IP and user agent come from the request unless given.

    ``clinic_id`` defaults to the clinic of the current ``/c/<clinic>/`` page. ``deferred``: the
    event is inserted once the response is rendered, with the request's other deferred events
    (one INSERT for them all, without its id), and the session is committed then; added at once,
    the page's next query flushed each event by itself.
    """
    actor = actor if actor is not None else _request_actor()
    ip, user_agent = _request_origin()
    event = AuditEvent(
        created_at=utcnow(),
        clinic_id=clinic_id if clinic_id is not None else _request_clinic_id(),
        actor_user_id=getattr(actor, "id", None),
        actor_email=actor_email if actor_email is not None else getattr(actor, "email", "") or "",
        action=action,
        target_type=target_type,
        target_id=None if target_id is None else str(target_id),
        details=details or {},
        ip=ip,
        user_agent=user_agent,
    )
    if deferred:
        _defer(event)
        return event
    db.session.add(event)
    if commit:
        db.session.commit()
    return event


def _defer(event: AuditEvent) -> None:
    pending = g.setdefault("audit_deferred", [])
    if not pending:
        after_this_request(_write_deferred)
    pending.append(event)


_COLUMNS = [column.key for column in AuditEvent.__table__.columns if column.key != "id"]


def _write_deferred(response):
    rows = [{key: getattr(event, key) for key in _COLUMNS} for event in g.pop("audit_deferred", [])]
    db.session.execute(sa.insert(AuditEvent.__table__), rows)  # Core: one statement for every row
    session = db.session()
    # The page is rendered: expiring its rows would only make the after-request hooks read them again.
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True
    return response


CONVERSATION_VIEW = "conversation.view"


def record_conversation_view(friend_id: int, *, commit: bool = True, deferred: bool = False, **details) -> AuditEvent:
    """A page showed this friend's conversation (GL 6.0 §17: every view of patient text)."""
    return record(
        CONVERSATION_VIEW, target_type="friend", target_id=friend_id, details=details, commit=commit, deferred=deferred
    )


def record_list_view(
    friend_ids: list[int], message_ids: list[int], *, poll: bool = False, commit: bool = True, deferred: bool = False
) -> AuditEvent | None:
    """A list showed previews (last messages) of these friends' conversations.

    A page load is always recorded. A poll (htmx refresh) is recorded only when it shows other
    previews than this user's previous list view, so a list left open does not flood the log.
    """
    details = {"friend_ids": friend_ids, "message_ids": message_ids}
    if not friend_ids:
        return None
    if poll and _previous_list_view(_request_actor(), _request_clinic_id()) == details:
        return None
    return record(CONVERSATION_VIEW, target_type="conversation_list", details=details, commit=commit, deferred=deferred)


def _previous_list_view(actor, clinic_id: int | None) -> dict | None:
    if actor is None:
        return None
    statement = (
        sa.select(AuditEvent.details)
        .where(
            AuditEvent.actor_user_id == actor.id,
            AuditEvent.clinic_id == clinic_id,
            AuditEvent.action == CONVERSATION_VIEW,
            AuditEvent.target_type == "conversation_list",
        )
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    return db.session.scalar(statement)


def changes(before: dict, after: dict) -> dict:
    """``{field: {"before": old, "after": new}}`` for the fields that changed (for settings audits).

    Callers pass secrets as a fixed marker (e.g. ``"set"``/``"changed"``), never the values.
    """
    return {
        key: {"before": before.get(key), "after": after.get(key)}
        for key in sorted(set(before) | set(after))
        if before.get(key) != after.get(key)
    }


@dataclass(frozen=True)
class AuditFilters:
    action: str = ""
    actor: str = ""
    date_from: date | None = None  # Japan dates, inclusive
    date_to: date | None = None


def _jst_day_start_in_utc(day: date) -> datetime:
    return to_utc(datetime.combine(day, time.min))


def _filtered(statement: sa.Select, filters: AuditFilters) -> sa.Select:
    if filters.action:
        statement = statement.where(AuditEvent.action.startswith(filters.action, autoescape=True))
    if filters.actor:
        statement = statement.where(AuditEvent.actor_email.contains(filters.actor.strip().lower(), autoescape=True))
    if filters.date_from:
        statement = statement.where(AuditEvent.created_at >= _jst_day_start_in_utc(filters.date_from))
    if filters.date_to:
        statement = statement.where(AuditEvent.created_at < _jst_day_start_in_utc(filters.date_to + timedelta(days=1)))
    return statement


def events_for_clinics(clinic_ids: Iterable[int], filters: AuditFilters | None = None) -> sa.Select:
    """The events of exactly these clinics (newest first). The only read path for portal pages."""
    ids = sorted(set(clinic_ids))
    statement = sa.select(AuditEvent).where(AuditEvent.clinic_id.in_(ids))
    return _filtered(statement, filters or AuditFilters()).order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc())


COUNT_CAP = 10_000  # beyond this the page says "10,000件以上" instead of counting millions of rows


def page_of_events(
    clinic_ids: Iterable[int], filters: AuditFilters, per_page: int = 50, before: tuple[datetime, int] | None = None
) -> tuple[list[AuditEvent], int, tuple[datetime, int] | None]:
    """One keyset page of ``events_for_clinics`` (after the cursor ``before``), the count of all
    matching events (capped at :data:`COUNT_CAP` + 1) and the next page's cursor."""
    statement = events_for_clinics(clinic_ids, filters)
    capped = statement.order_by(None).with_only_columns(AuditEvent.id).limit(COUNT_CAP + 1).subquery()
    total = db.session.scalar(sa.select(sa.func.count()).select_from(capped)) or 0
    if before is not None:
        statement = statement.where(sa.tuple_(AuditEvent.created_at, AuditEvent.id) < before)
    found = db.session.scalars(statement.limit(per_page + 1)).all()
    rows = list(found[:per_page])
    return rows, total, (rows[-1].created_at, rows[-1].id) if len(found) > per_page else None


def actions_seen(clinic_ids: Iterable[int]) -> list[str]:
    """Distinct actions recorded for these clinics, for the filter menu.

    A loose index scan (one index probe per distinct action), not a scan of the clinic's events.
    """
    ids = sorted(set(clinic_ids))
    first = sa.select(sa.func.min(AuditEvent.action).label("action")).where(AuditEvent.clinic_id.in_(ids))
    seen = first.cte("seen", recursive=True)
    following = (
        sa.select(AuditEvent.action)
        .where(AuditEvent.clinic_id.in_(ids), AuditEvent.action > seen.c.action)
        .order_by(AuditEvent.action)
        .limit(1)
        .scalar_subquery()
    )
    seen = seen.union_all(sa.select(following).where(seen.c.action.is_not(None)))
    return [action for action in db.session.scalars(sa.select(seen.c.action)) if action is not None]


def retention_days() -> int:
    configured = current_app.config.get("AUDIT_RETENTION_DAYS") or os.environ.get("AUDIT_RETENTION_DAYS")
    return int(configured or DEFAULT_RETENTION_DAYS)


def purge_expired(now: datetime | None = None) -> int:
    """Delete events older than the retention period; the ONLY way audit events are deleted."""
    cutoff = (now or utcnow()) - timedelta(days=retention_days())
    with retention_purge():
        result = db.session.execute(sa.delete(AuditEvent).where(AuditEvent.created_at < cutoff))
    purged = result.rowcount or 0
    record("audit.purge", details={"cutoff": cutoff.isoformat(), "deleted": purged})
    db.session.commit()
    return purged
