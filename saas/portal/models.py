"""The dashboard's daily roll-up: messages per clinic, Japan day and direction, kept as they are stored.

The 30-day message chart reads at most 60 rows of ``message_day`` instead of counting a clinic's
messages (265,000 index entries a month at 10 million messages). Every stored
:class:`~saas.friends.models.Message` adds one to its day's row in the same transaction with an
atomic upsert, so concurrent webhook workers never lose a count. Counts stay when message
bodies are purged or a patient's messages are erased: they say how busy a day was, no more.
"""

from __future__ import annotations

import functools
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import JAPAN, utcnow
from saas.extensions import db
from saas.friends.models import Message
from saas.tenancy.scoping import TenantOwned

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class MessageDay(TenantOwned, db.Model):
    """How many messages a clinic received (``in``) or sent (``out``) on one Japan day."""

    __tablename__ = "message_day"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "day", "direction"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column()
    direction: Mapped[str] = mapped_column(sa.String(8))
    total: Mapped[int] = mapped_column(sa.BigInteger().with_variant(sa.Integer(), "sqlite"), default=0)


def japan_day(moment: datetime) -> date:
    """The Japan calendar day of a naive UTC moment (Japan has no daylight saving)."""
    return (moment + (JAPAN.utcoffset(moment) or timedelta(0))).date()


@functools.cache
def add_statement(dialect: str):
    """The one statement that adds ``total`` messages to a day's row (values bound at execution;
    built once per dialect, as it runs for every stored message)."""
    columns = ("clinic_id", "day", "direction", "total")
    insert = _INSERTS[dialect](MessageDay).values({name: sa.bindparam(name) for name in columns})
    return insert.on_conflict_do_update(
        index_elements=["clinic_id", "day", "direction"],
        set_={"total": MessageDay.__table__.c.total + insert.excluded.total},
    )


def count_stored(session, messages: list[dict]) -> None:
    """Count messages stored in bulk (rows with ``clinic_id``, ``direction``, ``created_at``; no
    mapper event fired for them): one upsert per day and direction, not one per message, so
    concurrent batches hold the day's row for one statement each."""
    totals: dict[tuple[int, date, str], int] = {}
    for message in messages:
        key = (message["clinic_id"], japan_day(message["created_at"] or utcnow()), message["direction"])
        totals[key] = totals.get(key, 0) + 1
    connection = session.connection()  # rows of messages the scoped INSERT just stored
    statement = add_statement(connection.dialect.name)
    for (clinic_id, day, direction), total in sorted(totals.items()):  # one order: no deadlock between batches
        connection.execute(statement, {"clinic_id": clinic_id, "day": day, "direction": direction, "total": total})


@event.listens_for(Message, "after_insert")
def _count_into_day(mapper, connection, message: Message) -> None:
    day = japan_day(message.created_at or utcnow())
    values = {"clinic_id": message.clinic_id, "day": day, "direction": message.direction, "total": 1}
    connection.execute(add_statement(connection.dialect.name), values)
