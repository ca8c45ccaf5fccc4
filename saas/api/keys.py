"""Creating, finding and revoking API keys, and the clinics a key reaches.

A token is ``tsg_<prefix>_<secret>``: the prefix finds the row, the SHA-256 of the whole token
must match. Tokens have 256 bits of randomness, so a fast hash is enough (no password stretching
needed); only the hash is stored and the token is shown once, when the key is made.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

import sqlalchemy as sa

from saas.api.models import ApiKey
from saas.auth.roles import Role, Scope
from saas.common import utcnow
from saas.extensions import db
from saas.tenancy.models import Clinic, Organization

TOKEN_PREFIX = "tsg"
KEY_ROLES = (Role.ADMIN, Role.SENDER, Role.RESPONDER, Role.ANALYST, Role.VIEWER)  # never owner (billing)
LAST_USED_EVERY_SECONDS = 60


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_key(name: str, role: str, scope: str, scope_id: int, created_by=None) -> tuple[ApiKey, str]:
    """A new key and its token (the only time the token exists outside the caller). Flushes."""
    if role not in KEY_ROLES or scope not in (Scope.AGENCY, Scope.ORGANIZATION, Scope.CLINIC):
        raise ValueError("unknown role or scope")
    prefix = secrets.token_hex(6)
    token = f"{TOKEN_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    key = ApiKey(
        prefix=prefix,
        secret_hash=_hash(token),
        name=name[:120],
        role=role,
        scope=scope,
        created_by_id=getattr(created_by, "id", None),
        **{f"{scope}_id": scope_id},
    )
    db.session.add(key)
    db.session.flush()
    return key, token


def find_active(token: str | None) -> ApiKey | None:
    """The unrevoked key of this token, or None (any malformed or unknown token)."""
    parts = (token or "").split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        return None
    key = db.session.scalars(sa.select(ApiKey).where(ApiKey.prefix == parts[1][:16])).first()
    if key is None or not key.is_active or not hmac.compare_digest(key.secret_hash, _hash(token)):
        return None
    return key


def touch(key: ApiKey) -> None:
    """Note the key's last use (at most once a minute, so busy keys do not write on every call)."""
    now = utcnow()
    if key.last_used_at is None or (now - key.last_used_at).total_seconds() > LAST_USED_EVERY_SECONDS:
        key.last_used_at = now


def revoke(key: ApiKey) -> None:
    if key.revoked_at is None:
        key.revoked_at = utcnow()


def _clinics_statement(key: ApiKey) -> sa.Select:
    statement = sa.select(Clinic.id)
    if key.scope == Scope.AGENCY:
        return statement.join(Organization).where(Organization.agency_id == key.agency_id)
    if key.scope == Scope.ORGANIZATION:
        return statement.where(Clinic.organization_id == key.organization_id)
    return statement.where(Clinic.id == key.clinic_id)


def clinic_ids_for(key: ApiKey) -> frozenset[int]:
    """Every clinic the key reaches: the same rule as a membership at that scope."""
    return frozenset(db.session.scalars(_clinics_statement(key)))


def keys_for_scopes(pairs: list[tuple[str, int]]) -> list[ApiKey]:
    """Keys of the given (scope, id) pairs, newest first (the key list of the portal page)."""
    if not pairs:
        return []
    conditions = [sa.and_(ApiKey.scope == scope, getattr(ApiKey, f"{scope}_id") == ident) for scope, ident in pairs]
    return list(db.session.scalars(sa.select(ApiKey).where(sa.or_(*conditions)).order_by(ApiKey.id.desc())))
