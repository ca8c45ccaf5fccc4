"""Settings changes are audited with before/after values, from the ORM itself.

A model registered with :func:`audit_changes` gets one audit event per row created, changed or
deleted — whichever view, job or CLI command made the change — with
``details={"changes": {field: {"before": …, "after": …}}}``. Secret fields (LINE channel
secret, access tokens) are never logged: their entry says only whether a value is set and
whether it was replaced.

Register a model of your capability next to it (or in ``DEFAULTS`` below)::

    audit_changes(Coupon, "coupon", fields=("title", "discount"), secrets=())
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from importlib import import_module
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

BOOKKEEPING = frozenset({"id", "clinic_id", "created_at", "updated_at"})
SECRET_SET, SECRET_EMPTY, SECRET_REPLACED = "(set)", "(empty)", "(replaced)"


@dataclass(frozen=True)
class Audited:
    action: str  # events are "<action>.create", "<action>.update", "<action>.delete"
    fields: tuple[str, ...] | None  # None: every column but the bookkeeping ones
    secrets: tuple[str, ...]


_AUDITED: dict[type, Audited] = {}

# (model, action, fields, secrets): what GL 6.0 §17 and issue 10 name — LINE credentials, FAQ
# rules, schedules, rich menus, plans. Roles are audited by saas.members.services (from/to).
DEFAULTS = (
    ("saas.tenancy.models:Clinic", "line.credentials", ("line_channel_id", "line_channel_secret", "line_access_token"),
     ("line_channel_secret", "line_access_token")),
    ("saas.autoreply.models:AutoReplyRule", "autoreply.rule", None, ()),
    ("saas.autoreply.models:AutoReplySettings", "autoreply.settings", None, ()),
    ("saas.schedule.models:ScheduleSettings", "schedule.settings", None, ()),
    ("saas.schedule.models:WeeklyBlock", "schedule.weekly_block", None, ()),
    ("saas.schedule.models:Closure", "schedule.closure", None, ()),
    ("saas.richmenu.models:RichMenu", "richmenu", None, ()),
    ("saas.richmenu.models:MenuLinks", "richmenu.links", None, ()),
    ("saas.quota.models:ClinicPlan", "plan", None, ()),
    ("saas.booking.models:BookingSettings", "booking.settings_values", None, ()),
)  # fmt: skip


def audit_changes(model: type, action: str, *, fields: tuple[str, ...] | None = None, secrets=()) -> None:
    """Audit every create/update/delete of ``model`` with before/after values."""
    _AUDITED[model] = Audited(action, tuple(fields) if fields else None, tuple(secrets))


def _register_defaults() -> None:
    global _defaults_loaded
    _defaults_loaded = True
    for path, action, fields, secrets in DEFAULTS:
        module, _, name = path.partition(":")
        try:
            model = getattr(import_module(module), name)
        except (ImportError, AttributeError):
            continue  # a capability that is not installed
        _AUDITED.setdefault(model, Audited(action, fields, secrets))


def audited_models() -> dict[type, Audited]:
    """Every audited model: the defaults (loaded on first use) and what capabilities registered."""
    if not _defaults_loaded:
        _register_defaults()
    return _AUDITED


_defaults_loaded = False


def json_safe(value: Any) -> Any:
    """A JSON-safe copy of a column value."""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"({len(value)} bytes)"
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def _fields(obj, spec: Audited) -> list[str]:
    columns = [c.key for c in sa.inspect(type(obj)).column_attrs]
    return [c for c in columns if c in spec.fields] if spec.fields else [c for c in columns if c not in BOOKKEEPING]


def _shown(field: str, value: Any, spec: Audited) -> Any:
    if field in spec.secrets:
        return SECRET_SET if value else SECRET_EMPTY
    return json_safe(value)


def _committed(session: Session, obj, fields: list[str]) -> dict:
    """The values in the database of attributes that were set without being loaded first."""
    if not fields:
        return {}
    mapper = sa.inspect(type(obj))
    columns = [mapper.column_attrs[f].columns[0] for f in fields]
    key = [(c, v) for c, v in zip(mapper.primary_key, sa.inspect(obj).identity, strict=True)]
    row = session.connection().execute(sa.select(*columns).where(*[c == v for c, v in key])).first()
    return dict(zip(fields, row, strict=True)) if row else {}


def _diff(session: Session, obj, spec: Audited) -> dict:
    state = sa.inspect(obj)
    histories = {f: state.attrs[f].history for f in _fields(obj, spec)}
    changed = {f: h for f, h in histories.items() if h.has_changes()}
    unloaded = [f for f, h in changed.items() if not h.deleted and state.identity]
    committed = _committed(session, obj, unloaded)
    changes = {}
    for field, history in changed.items():
        before = history.deleted[0] if history.deleted else committed.get(field)
        after = history.added[0] if history.added else None
        if before == after:
            continue
        entry = {"before": _shown(field, before, spec), "after": _shown(field, after, spec)}
        if field in spec.secrets and before and after:
            entry["after"] = SECRET_REPLACED
        changes[field] = entry
    return changes


def _values(obj, spec: Audited, side: str) -> dict:
    changes = {}
    for field in _fields(obj, spec):
        value = getattr(obj, field, None)
        if value is None or value == [] or value == {}:
            continue
        shown = _shown(field, value, spec)
        changes[field] = {"before": None, "after": shown} if side == "after" else {"before": shown, "after": None}
    return changes


@event.listens_for(Session, "before_flush")
def _collect(session: Session, flush_context, instances) -> None:
    audited = audited_models()
    if not audited:
        return
    pending = session.info.setdefault("audited_changes", [])
    for obj in session.new:
        spec = audited.get(type(obj))
        if spec and (changes := _values(obj, spec, "after")):
            pending.append((obj, spec, "create", changes))
    for obj in session.dirty:
        spec = audited.get(type(obj))
        if spec and obj not in session.deleted and (changes := _diff(session, obj, spec)):
            pending.append((obj, spec, "update", changes))
    for obj in session.deleted:
        spec = audited.get(type(obj))
        if spec:
            pending.append((obj, spec, "delete", _values(obj, spec, "before")))


@event.listens_for(Session, "after_flush_postexec")
def _record(session: Session, flush_context) -> None:
    """Write the events once ids are known; a commit flushes them with the change itself."""
    pending = session.info.pop("audited_changes", [])
    if not pending:
        return
    from saas.audit.services import record

    for obj, spec, verb, changes in pending:
        record(
            f"{spec.action}.{verb}",
            clinic_id=getattr(obj, "clinic_id", None) or _own_clinic_id(obj),
            target_type=type(obj).__tablename__,
            target_id=sa.inspect(obj).identity[0] if sa.inspect(obj).identity else None,
            details={"changes": changes},
        )


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop("audited_changes", None)


def _own_clinic_id(obj) -> int | None:
    return obj.id if type(obj).__tablename__ == "clinic" else None
