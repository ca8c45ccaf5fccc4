"""Server-side records of signed-in browsers: what makes logout and revocation take effect at once.

The signed cookie holds a random session token; the database holds only its SHA-256. A request
is signed in only while its record is open and younger than SESSION_MAX_HOURS (counted from the
sign-in, however active the session) and was seen within SESSION_IDLE_MINUTES.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask import current_app, has_request_context, request

from saas.auth.models import StaffSession, User
from saas.common import utcnow
from saas.extensions import db

TOUCH_EVERY = timedelta(seconds=30)  # last_seen_at is written at most this often per session


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _request_origin() -> tuple[str, str]:
    if not has_request_context():
        return "", ""
    return (request.remote_addr or "")[:64], (request.user_agent.string or "")[:400]


def start(user: User) -> str:
    """Open a session record for the user and return the token the cookie will carry."""
    token = secrets.token_urlsafe(32)
    address, agent = _request_origin()
    now = utcnow()
    db.session.add(
        StaffSession(
            user_id=user.id,
            token_hash=_hash(token),
            signed_in_at=now,
            last_seen_at=now,
            ip_address=address,
            user_agent=agent,
        )
    )
    return token


def _limits() -> tuple[timedelta, timedelta]:
    config = current_app.config
    return timedelta(hours=config["SESSION_MAX_HOURS"]), timedelta(minutes=config["SESSION_IDLE_MINUTES"])


def expiry_reason(record: StaffSession, now: datetime | None = None) -> str | None:
    """'max_age' or 'idle_timeout' when the record is past a limit, else None."""
    now = now or utcnow()
    max_age, idle = _limits()
    if now - record.signed_in_at > max_age:
        return "max_age"
    if now - record.last_seen_at > idle:
        return "idle_timeout"
    return None


def find(token: str | None, user_id: int) -> StaffSession | None:
    """The open record of this token for this user (expired ones included: the caller ends them)."""
    if not token:
        return None
    record = db.session.scalars(sa.select(StaffSession).where(StaffSession.token_hash == _hash(token))).first()
    if record is None or record.user_id != user_id or record.ended_at is not None:
        return None
    return record


def mark_verified(record: StaffSession) -> None:
    """The sign-in is complete: password, and the second factor where the role requires it."""
    record.verified_at = utcnow()


def touch(record: StaffSession) -> None:
    now = utcnow()
    if now - record.last_seen_at >= TOUCH_EVERY:
        record.last_seen_at = now
        db.session.commit()


def end(record: StaffSession, reason: str) -> None:
    if record.ended_at is None:
        record.ended_at, record.end_reason = utcnow(), reason


def end_all_for(user_id: int, reason: str, *, keep: StaffSession | None = None) -> int:
    """End every open session of the user (but ``keep``); returns how many were ended."""
    db.session.flush()  # pending changes (a new password) must survive the expire below
    statement = (
        sa.update(StaffSession)
        .where(StaffSession.user_id == user_id, StaffSession.ended_at.is_(None))
        .values(ended_at=utcnow(), end_reason=reason)
        .execution_options(synchronize_session=False)
    )
    if keep is not None:
        statement = statement.where(StaffSession.id != keep.id)
    ended = db.session.execute(statement).rowcount
    db.session.expire_all()  # loaded records must see the new ended_at
    return ended


def active_for(user_id: int) -> list[StaffSession]:
    """The user's open sessions that are still within their limits, newest first."""
    statement = (
        sa.select(StaffSession)
        .where(StaffSession.user_id == user_id, StaffSession.ended_at.is_(None))
        .order_by(StaffSession.signed_in_at.desc())
    )
    now = utcnow()
    return [record for record in db.session.scalars(statement) if expiry_reason(record, now) is None]


def end_one_of(user_id: int, session_id: int, reason: str) -> bool:
    """End one of the user's own sessions by id; False when it is not theirs or already ended."""
    record = db.session.get(StaffSession, session_id)
    if record is None or record.user_id != user_id or record.ended_at is not None:
        return False
    end(record, reason)
    return True


def signed_in_from_before(user: User | None, address: str) -> bool:
    """Whether the user completed a sign-in from this address before (their usual place)."""
    if user is None or not address:
        return False
    statement = sa.select(StaffSession.id).where(
        StaffSession.user_id == user.id, StaffSession.ip_address == address, StaffSession.verified_at.is_not(None)
    )
    return db.session.scalars(statement.limit(1)).first() is not None
