"""Small pieces every capability uses: timestamps, time zones and slugs."""

from __future__ import annotations

import gc
import re
import secrets
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

JAPAN = ZoneInfo("Asia/Tokyo")


def utcnow() -> datetime:
    """Naive UTC now: stored as-is in both SQLite and Postgres columns."""
    return datetime.now(UTC).replace(tzinfo=None)


def settle_startup_heap() -> None:
    """Keep what start-up built (the app, its mappers, schemas and catalogs) out of the garbage
    collector's full passes, which otherwise walk all of it at random moments: 213 ms inside one
    portal request in 60 (the conversation page's p99). Start-up garbage is collected first so
    that it is not kept with them. Call once per serving process, after the app is built."""
    gc.collect()
    gc.freeze()


def zone_of(clinic=None) -> ZoneInfo:
    """The clinic's time zone (Japan unless it says otherwise)."""
    return ZoneInfo(clinic.timezone) if clinic is not None and clinic.timezone else JAPAN


def to_local(moment: datetime, zone: ZoneInfo = JAPAN) -> datetime:
    """A stored (naive UTC) time as naive wall-clock time in the zone."""
    return moment.replace(tzinfo=UTC).astimezone(zone).replace(tzinfo=None)


def to_utc(local: datetime, zone: ZoneInfo = JAPAN) -> datetime:
    """A naive wall-clock time in the zone as the naive UTC time we store."""
    return local.replace(tzinfo=zone).astimezone(UTC).replace(tzinfo=None)


def N_(text: str) -> str:
    """Marks a msgid for extraction only; the template translates it with ``_()`` when it is shown."""
    return text


def clinic_row(model, clinic_id: int, **defaults):
    """The clinic's row of a one-row-per-clinic table (settings), created with defaults on first use.

    Two workers may create it at once: the unique constraint decides, the loser reads the winner's row.
    """
    from sqlalchemy.exc import IntegrityError

    from saas.extensions import db

    statement = sa.select(model).where(model.clinic_id == clinic_id)
    found = db.session.scalars(statement).first()
    if found is None:
        try:
            with db.session.begin_nested():
                found = model(clinic_id=clinic_id, **defaults)
                db.session.add(found)
        except IntegrityError:
            found = db.session.scalars(statement).first()
    return found


def random_key(nbytes: int = 24) -> str:
    return secrets.token_urlsafe(nbytes)


def slugify(text: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug or random_key(6).lower()


# Primary and foreign keys of tables that grow with traffic: 64-bit on Postgres. SQLite keeps
# INTEGER, the only type its rowid auto-increment works with (and it is 64-bit there anyway).
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, server_default=sa.func.now())
