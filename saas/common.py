"""Small pieces every capability uses: timestamps and slugs."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column


def utcnow() -> datetime:
    """Naive UTC now: stored as-is in both SQLite and Postgres columns."""
    return datetime.now(UTC).replace(tzinfo=None)


def N_(text: str) -> str:
    """Marks a msgid for extraction only; the template translates it with ``_()`` when it is shown."""
    return text


def random_key(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or random_key(6).lower()


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, server_default=sa.func.now())
