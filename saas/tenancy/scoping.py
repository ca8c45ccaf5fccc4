"""Tenant isolation, enforced in one place at the ORM layer.

Every clinic-owned model inherits :class:`TenantOwned`. A ``do_orm_execute`` hook adds
``clinic_id IN (<clinics in scope>)`` to every ORM query that touches such a model, and a
``before_flush`` hook refuses to write a row outside the scope. The scope is a context
variable, set per request from the URL (see ``saas.tenancy.views``) and per job by
``tenant_scope(clinic_id)``. Code that must see every clinic (platform jobs, migrations,
the demo loader) says so with ``platform_scope("reason")`` — grep for it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, Session, declared_attr, mapped_column, with_loader_criteria


class TenantScopeError(RuntimeError):
    """A clinic-owned row was queried or written outside any tenant scope, or across it."""


@dataclass(frozen=True)
class TenantScope:
    clinic_ids: frozenset[int] | None  # None: platform scope, every clinic
    reason: str = ""

    @property
    def is_platform(self) -> bool:
        return self.clinic_ids is None


_current_scope: ContextVar[TenantScope | None] = ContextVar("tenant_scope", default=None)


class TenantOwned:
    """Mixin for every table whose rows belong to one clinic."""

    @declared_attr
    def clinic_id(cls) -> Mapped[int]:
        return mapped_column(sa.ForeignKey("clinic.id", ondelete="CASCADE"), index=True, nullable=False)


def current_scope() -> TenantScope | None:
    return _current_scope.get()


@contextmanager
def _scoped(scope: TenantScope) -> Iterator[TenantScope]:
    token = _current_scope.set(scope)
    try:
        yield scope
    finally:
        _current_scope.reset(token)


def tenant_scope(clinic_ids: int | Iterable[int]) -> contextmanager:
    """Limit every ORM query and write in the block to the given clinic(s)."""
    ids = frozenset([clinic_ids]) if isinstance(clinic_ids, int) else frozenset(clinic_ids)
    return _scoped(TenantScope(ids))


def platform_scope(reason: str) -> contextmanager:
    """The escape hatch: see every clinic's rows. Use only for platform work; say why."""
    return _scoped(TenantScope(None, reason))


def enter_scope(scope: TenantScope | None):
    """Set the scope for the rest of a request; returns a token for :func:`leave_scope`."""
    return _current_scope.set(scope)


def leave_scope(token) -> None:
    _current_scope.reset(token)


def _touches_tenant_rows(execute_state) -> bool:
    return any(issubclass(mapper.class_, TenantOwned) for mapper in execute_state.all_mappers)


def _add_tenant_criteria(execute_state) -> None:
    if not (execute_state.is_select or execute_state.is_update or execute_state.is_delete):
        return
    if not _touches_tenant_rows(execute_state):
        return
    scope = _current_scope.get()
    if scope is None:
        raise TenantScopeError("clinic-owned rows queried outside a tenant scope")
    if scope.is_platform:
        return
    allowed = tuple(sorted(scope.clinic_ids))
    execute_state.statement = execute_state.statement.options(
        with_loader_criteria(TenantOwned, lambda cls: cls.clinic_id.in_(allowed), include_aliases=True)
    )


def _check_writes(session: Session, flush_context, instances) -> None:
    scope = _current_scope.get()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if not isinstance(obj, TenantOwned):
            continue
        if scope is None:
            raise TenantScopeError(f"{type(obj).__name__} written outside a tenant scope")
        if scope.is_platform:
            continue
        if obj.clinic_id is None and len(scope.clinic_ids) == 1:
            obj.clinic_id = next(iter(scope.clinic_ids))
        if obj.clinic_id not in scope.clinic_ids:
            raise TenantScopeError(
                f"{type(obj).__name__} of clinic {obj.clinic_id} written from the scope of {sorted(scope.clinic_ids)}"
            )


def install(session_class) -> None:
    """Attach the two hooks to a session class (done once, from create_app)."""
    if not event.contains(session_class, "do_orm_execute", _add_tenant_criteria):
        event.listen(session_class, "do_orm_execute", _add_tenant_criteria)
        event.listen(session_class, "before_flush", _check_writes)
