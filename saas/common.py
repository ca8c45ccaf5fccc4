"""Small pieces every capability uses: timestamps, time zones and slugs."""

from __future__ import annotations

import gc
import re
import secrets
from datetime import UTC, datetime, timedelta
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
BIG_ID_MAX = 2**63 - 1  # the largest BigId (and SQLite rowid): the bound of every <int:...> in a URL
ID_MAX = 2**31 - 1  # the largest key of the other tables (Postgres INTEGER): every id a form names
MAX_DAYS = 36500  # 「N日以内」「N日以上前」 at most a century (a timedelta overflows past 2.7 million days)


FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")  # a Japanese IME types these


def parse_id(text, limit: int = ID_MAX) -> int | None:
    """A form's (or a stored segment's) id or count: digits (ASCII or full-width) within ``limit``;
    None for anything else, such as "²", which ``isdigit`` accepts and ``int`` refuses."""
    text = str(text).strip().translate(FULL_WIDTH_DIGITS)
    if not (text.isascii() and text.isdigit()) or int(text) > limit:
        return None
    return int(text)


def parse_big_id(text) -> int | None:
    """:func:`parse_id` for the keys of the tables that grow with traffic (messages, receipts)."""
    return parse_id(text, BIG_ID_MAX)


def parse_ids(values) -> list[int]:
    """The ids of a list; what is not an id stays as 0, which no row has, so a condition on it
    matches nobody (dropping it would widen an audience). Blank entries are skipped."""
    return [parse_id(value) or 0 for value in values or [] if str(value).strip()]


def parse_days(text) -> int | None:
    """A day count of a form: digits up to ``MAX_DAYS``; None for anything else."""
    return parse_id(text, MAX_DAYS)


def read_days(text: str | None, label: str, errors: list[str]) -> int | None:
    """A form's optional day count (「N日以内」); a problem in Japanese appended to ``errors``."""
    from flask_babel import gettext as _

    if not (text or "").strip():
        return None
    days = parse_days(text)
    if days is None:
        errors.append(_("%(label)sは0〜%(max)sの日数（数字）で入力してください", label=label, max=MAX_DAYS))
    return days


def days_before(moment, days):
    """``moment`` (a date or datetime) less a stored day count, capped at ``MAX_DAYS``."""
    return moment - timedelta(days=min(int(days), MAX_DAYS))


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, server_default=sa.func.now())
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow, server_default=sa.func.now())
