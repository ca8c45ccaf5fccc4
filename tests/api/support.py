"""API test helpers: keys made through the service the portal uses, and authorised calls."""

from __future__ import annotations

from saas.api import keys
from saas.extensions import db


def make_key(role: str = "admin", *, agency=None, organization=None, clinic=None) -> str:
    """A new API key's token for one scope."""
    scope, target = next(
        (name, row) for name, row in (("agency", agency), ("organization", organization), ("clinic", clinic)) if row
    )
    _, token = keys.create_key(f"{scope} key", role, scope, target.id)
    db.session.commit()
    return token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}
