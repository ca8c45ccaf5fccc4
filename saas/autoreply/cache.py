"""Version stamps that tell every process when a clinic's compiled rules are stale.

A stamp is a random token in Redis, replaced whenever the clinic's rules, library
subscriptions or overrides change (or, for the shared library, any library item). The
compiled automaton is cached in-process under (clinic id, clinic stamp, library stamp),
so each web or worker process recompiles at most once per change. A random token (not a
counter) keeps a flushed Redis from ever matching an old cache entry.
"""

from __future__ import annotations

import secrets

from sqlalchemy import event
from sqlalchemy.orm import Session

from saas.extensions import db
from saas.queues import get_redis

LIBRARY_KEY = "autoreply:stamp:library"
_PENDING = "autoreply_stale"


def clinic_key(clinic_id: int) -> str:
    return f"autoreply:stamp:clinic:{clinic_id}"


def current_stamp(key: str) -> str:
    """The stamp under ``key``, created when missing."""
    redis = get_redis()
    value = redis.get(key)
    if value is None:
        redis.set(key, secrets.token_hex(8), nx=True)
        value = redis.get(key)
    return value.decode()


def bump(key: str) -> None:
    get_redis().set(key, secrets.token_hex(8))


def bump_clinic(clinic_id: int, *, on_commit: bool = False) -> None:
    """Mark the clinic's compiled rules stale (now, or when the session commits)."""
    if on_commit:
        db.session.info.setdefault(_PENDING, set()).add(clinic_key(clinic_id))
    else:
        bump(clinic_key(clinic_id))


def _stale_keys(obj) -> list[str]:
    from saas.autoreply.models import AutoReplyRule
    from saas.library.models import ClinicLibraryOverride, LibraryItem, LibrarySet, LibrarySubscription

    if isinstance(obj, AutoReplyRule | ClinicLibraryOverride | LibrarySubscription) and obj.clinic_id:
        return [clinic_key(obj.clinic_id)]
    if isinstance(obj, LibraryItem | LibrarySet):
        return [LIBRARY_KEY]
    return []


@event.listens_for(Session, "after_flush")
def _collect(session: Session, flush_context) -> None:
    for obj in (*session.new, *session.dirty, *session.deleted):
        keys = _stale_keys(obj)
        if keys:
            session.info.setdefault(_PENDING, set()).update(keys)


@event.listens_for(Session, "after_commit")
def _publish(session: Session) -> None:
    for key in session.info.pop(_PENDING, set()):
        bump(key)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_PENDING, None)
