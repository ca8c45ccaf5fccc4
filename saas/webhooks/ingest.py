"""The receive path: signature, parsing, minimal validation, one bulk insert, enqueue.

Kept lean on purpose: LINE gives up after 2 seconds, so nothing here calls LINE or runs
per-event queries. Duplicates (redeliveries, concurrent retries) are dropped by the
database's unique constraint with ``INSERT ... ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from saas.common import utcnow
from saas.extensions import db
from saas.webhooks import schema
from saas.webhooks.models import WebhookEvent

log = logging.getLogger(__name__)

REPLY_TOKEN_TTL = timedelta(seconds=60)
_ROWS_PER_INSERT = 200  # well under SQLite's bound-parameter limit
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def signature_valid(secret: str, body: bytes, signature: str | None) -> bool:
    """LINE's x-line-signature: base64(HMAC-SHA256(channel secret, raw body))."""
    if not signature or not secret:
        return False
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).digest()
    return hmac.compare_digest(base64.b64encode(digest), signature.encode("utf-8", "replace"))


def _timestamp(ms) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC).replace(tzinfo=None)


def row_for(clinic_id: int, event) -> dict | None:
    """The table row for one event, or None (logged) when it is not a valid LINE event."""
    event = schema.clean_event(clinic_id, event)
    if event is None:
        return None
    reply_token = event.get("replyToken")
    occurred = _timestamp(event["timestamp"])
    return {
        "clinic_id": clinic_id,
        "webhook_event_id": event["webhookEventId"],
        "event_type": event["type"],
        "line_user_id": (event.get("source") or {}).get("userId"),
        "occurred_at": occurred,
        "is_redelivery": bool(event["deliveryContext"]["isRedelivery"]),
        "mode": event["mode"],
        "reply_token": reply_token,
        "reply_token_expires_at": occurred + REPLY_TOKEN_TTL if reply_token else None,
        "payload": event,
        "state": "pending",
        "attempts": 0,
        "received_at": utcnow(),
    }


def store_events(clinic_id: int, rows: list[dict]) -> list[int]:
    """Insert the rows (duplicates dropped); returns the ids of rows that were new.

    One statement per 200 rows, on a connection of its own (no ORM session: the rows carry
    their ``clinic_id``, nothing is loaded back). On Postgres each statement is its own
    transaction (autocommit): one round trip instead of BEGIN, INSERT, COMMIT. Should the
    database refuse a batch, each of its rows is tried alone so one row it cannot take (logged)
    does not lose the others.
    """
    rows = list({row["webhook_event_id"]: row for row in rows}.values())
    if not rows:
        return []
    engine = db.engine
    statement = _statement(engine.dialect.name)
    with _connection(engine) as connection:
        return [
            i
            for start in range(0, len(rows), _ROWS_PER_INSERT)
            for i in _insert_batch(connection, statement, clinic_id, rows[start : start + _ROWS_PER_INSERT])
        ]


@functools.cache
def _statement(dialect: str):
    # The rows go as parameters, not into the statement: it stays the same for every request
    # and its compiled form is cached.
    table = WebhookEvent.__table__
    return (
        _INSERTS[dialect](table)
        .on_conflict_do_nothing(index_elements=["clinic_id", "webhook_event_id"])
        .returning(table.c.id)
    )


def _connection(engine: sa.Engine):
    if engine.dialect.name == "postgresql":
        return engine.connect().execution_options(isolation_level="AUTOCOMMIT")
    return engine.connect()  # SQLite: a transaction per statement, committed by _insert


def _insert(connection: sa.Connection, statement, rows: list[dict]) -> list[int]:
    parameters = rows[0] if len(rows) == 1 else rows  # one row: a plain execute, no executemany machinery
    try:
        ids = list(connection.execute(statement, parameters).scalars())
    except BaseException:
        if connection.in_transaction():
            connection.rollback()
        raise
    if connection.in_transaction():
        connection.commit()
    return ids


def _insert_batch(connection: sa.Connection, statement, clinic_id: int, rows: list[dict]) -> list[int]:
    try:
        return _insert(connection, statement, rows)
    except sa.exc.SQLAlchemyError:
        log.exception("webhook batch of clinic %s refused by the database; storing its events one by one", clinic_id)
    ids = []
    for row in rows:
        try:
            ids.extend(_insert(connection, statement, [row]))
        except sa.exc.SQLAlchemyError:
            log.exception("webhook event %s of clinic %s could not be stored", row["webhook_event_id"], clinic_id)
    return ids


def enqueue_handling(clinic_id: int, event_ids: list[int]) -> None:
    """One job for the new events of this request, on the ``webhooks`` queue."""
    from saas.webhooks.jobs import enqueue

    enqueue(clinic_id, event_ids)


def max_body_bytes() -> int:
    return current_app.config["WEBHOOK_MAX_BYTES"]
