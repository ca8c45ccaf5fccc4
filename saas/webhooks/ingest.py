"""The receive path: signature, parsing, minimal validation, one bulk insert, enqueue.

Kept lean on purpose: LINE gives up after 2 seconds, so nothing here calls LINE or runs
per-event queries. Duplicates (redeliveries, concurrent retries) are dropped by the
database's unique constraint with ``INSERT ... ON CONFLICT DO NOTHING``. On Postgres the
deliveries a process receives at the same time share that insert and the enqueue
(:class:`GroupWriter`); each is answered only once its own rows are stored.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import logging
import os
import queue
import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from flask import Flask, current_app
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
        .returning(table.c.id, table.c.clinic_id)
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


def store_and_enqueue(clinic_id: int, rows: list[dict]) -> None:
    """Store one delivery's rows and enqueue their handling; returns once both are done.

    On Postgres the rows go to this process's :class:`GroupWriter` (the deliveries that arrive
    while it writes are stored together); elsewhere (SQLite: one writer at a time anyway) they
    are stored here. Raises what storing or enqueueing raised: the delivery is answered 500.
    """
    if not rows:
        return
    app = current_app._get_current_object()
    if db.engine.dialect.name != "postgresql":
        enqueue_handling(clinic_id, store_events(clinic_id, rows))
        return
    writer = app.extensions.get("tsunagu_webhook_writer")
    if writer is None or writer.pid != os.getpid():  # none yet, or inherited through a fork
        with _WRITERS_LOCK:
            writer = app.extensions.get("tsunagu_webhook_writer")
            if writer is None or writer.pid != os.getpid():
                writer = app.extensions["tsunagu_webhook_writer"] = GroupWriter(app)
    writer.submit(clinic_id, rows)


_WRITERS_LOCK = threading.Lock()

# The writer's statement on Postgres: one array per column, whatever the number of rows, so its
# text never changes and psycopg prepares it once per connection (no parse or plan per write);
# SQLAlchemy's multi-row VALUES rendered and bound every row's 13 values and was a quarter of a
# delivery's CPU.
_UNNEST_COLUMNS = (
    ("clinic_id", "bigint"),
    ("webhook_event_id", "varchar"),
    ("event_type", "varchar"),
    ("line_user_id", "varchar"),
    ("occurred_at", "timestamp"),
    ("is_redelivery", "boolean"),
    ("mode", "varchar"),
    ("reply_token", "varchar"),
    ("reply_token_expires_at", "timestamp"),
    ("payload", "text"),
    ("state", "varchar"),
    ("attempts", "integer"),
    ("received_at", "timestamp"),
)
_UNNEST_INSERT = (
    f"INSERT INTO {WebhookEvent.__tablename__} ({', '.join(name for name, _ in _UNNEST_COLUMNS)}) "
    f"SELECT {', '.join(name + '::json' if name == 'payload' else name for name, _ in _UNNEST_COLUMNS)} "
    f"FROM unnest({', '.join(f'%s::{kind}[]' for _, kind in _UNNEST_COLUMNS)}) "
    f"AS given({', '.join(name for name, _ in _UNNEST_COLUMNS)}) "
    "ON CONFLICT (clinic_id, webhook_event_id) DO NOTHING RETURNING id, clinic_id"
)


def _insert_group(connection: sa.Connection, rows: list[dict]) -> list[tuple[int, int]]:
    """(id, clinic id) of each new row, in one statement on Postgres; payloads go as JSON text."""
    columns = tuple(
        [json.dumps(row[name]) for row in rows] if name == "payload" else [row[name] for row in rows]
        for name, _ in _UNNEST_COLUMNS
    )
    return connection.exec_driver_sql(_UNNEST_INSERT, columns).all()


class _Delivery:
    """One request's rows, waiting for the writer; ``error`` is what its request raises."""

    __slots__ = ("clinic_id", "rows", "done", "error")

    def __init__(self, clinic_id: int, rows: list[dict]):
        self.clinic_id, self.rows = clinic_id, rows
        self.done, self.error = threading.Event(), None


class GroupWriter:
    """Group commit for webhook deliveries: one thread per process that stores, in one statement on
    a connection it keeps, every delivery that arrived while it stored the previous ones, then
    enqueues once per clinic. Each request still waits until its rows are committed and its job
    enqueued (LINE's answer means "stored"), so no guarantee changes; what goes is a pool
    checkout, a ping, a commit and a ``SET NX`` per request. Should the shared statement fail,
    each delivery is stored alone as before (one bad row never costs the others). The thread
    ends (and closes its connection) after ``IDLE_SECONDS`` without deliveries.
    """

    IDLE_SECONDS = 5.0
    WAIT_SECONDS = 20.0  # under gunicorn's timeout (30 s): a request answered 500 rather than killed
    MAX_ROWS = 1000  # per round: beyond that the next round takes the rest

    def __init__(self, app: Flask):
        self.app, self.pid = app, os.getpid()
        self._queue: queue.SimpleQueue[_Delivery] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._connection: sa.Connection | None = None

    def submit(self, clinic_id: int, rows: list[dict]) -> None:
        delivery = _Delivery(clinic_id, rows)
        self._queue.put(delivery)
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="webhook-writer", daemon=True)
                self._thread.start()
        if not delivery.done.wait(self.WAIT_SECONDS):
            raise TimeoutError("the webhook writer did not store this delivery in time")
        if delivery.error is not None:
            raise delivery.error

    def _run(self) -> None:
        with self.app.app_context():
            try:
                while True:
                    batch = self._next_batch()
                    if batch is None:
                        return
                    self._write(batch)
            finally:
                self._close()

    def _next_batch(self) -> list[_Delivery] | None:
        while True:
            try:
                first = self._queue.get(timeout=self.IDLE_SECONDS)
                break
            except queue.Empty:
                with self._lock:  # submit() starts a new thread unless this one sees its delivery
                    if self._queue.empty():
                        self._thread = None
                        return None
        batch, rows = [first], len(first.rows)
        while rows < self.MAX_ROWS:
            try:
                delivery = self._queue.get_nowait()
            except queue.Empty:
                break
            batch.append(delivery)
            rows += len(delivery.rows)
        return batch

    def _write(self, batch: list[_Delivery]) -> None:
        try:
            new_ids = self._store(batch)
            by_clinic: dict[int, list[_Delivery]] = {}
            for delivery in batch:
                by_clinic.setdefault(delivery.clinic_id, []).append(delivery)
            for clinic_id, deliveries in by_clinic.items():
                if any(delivery.error is None for delivery in deliveries):
                    try:
                        enqueue_handling(clinic_id, new_ids.get(clinic_id, []))
                    except Exception as exc:  # Redis unreachable: the rows are stored, LINE redelivers
                        for delivery in deliveries:
                            delivery.error = delivery.error or exc
        except BaseException as exc:
            for delivery in batch:
                delivery.error = delivery.error or exc
            if not isinstance(exc, Exception):
                raise
        finally:
            for delivery in batch:
                delivery.done.set()

    def _store(self, batch: list[_Delivery]) -> dict[int, list[int]]:
        """New row ids per clinic: one statement for the batch, else each delivery alone."""
        rows = list({(row["clinic_id"], row["webhook_event_id"]): row for d in batch for row in d.rows}.values())
        new_ids: dict[int, list[int]] = {}
        try:
            for row_id, clinic_id in _insert_group(self._kept_connection(), rows):
                new_ids.setdefault(clinic_id, []).append(row_id)
            return new_ids
        except Exception:
            log.warning("a group of %s webhook deliveries could not be stored together", len(batch), exc_info=True)
            self._close(invalidate=True)
        new_ids = {}
        for delivery in batch:
            try:
                new_ids.setdefault(delivery.clinic_id, []).extend(store_events(delivery.clinic_id, delivery.rows))
            except Exception as exc:
                delivery.error = exc
        return new_ids

    def _kept_connection(self) -> sa.Connection:
        if self._connection is None:
            self._connection = _connection(db.engine)
        return self._connection

    def _close(self, *, invalidate: bool = False) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                if invalidate:  # it may be broken (Postgres restarted): the pool must not hand it out again
                    connection.invalidate()
                connection.close()
            except Exception:
                log.debug("closing the webhook writer's connection failed", exc_info=True)
