"""The receive path: signature, parsing, minimal validation, one bulk insert, enqueue.

Kept lean on purpose: LINE gives up after 2 seconds, so nothing here calls LINE or runs
per-event queries. Duplicates (redeliveries, concurrent retries) are dropped by the
database's unique constraint with ``INSERT ... ON CONFLICT DO NOTHING``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy.dialects import postgresql, sqlite

from saas.common import utcnow
from saas.extensions import db
from saas.queues import DEFAULT, get_queue
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
    """The table row for one event, or None (logged) when the event is malformed."""
    if not isinstance(event, dict):
        log.warning("webhook event skipped: not an object (clinic %s)", clinic_id)
        return None
    event_id, kind, ms = event.get("webhookEventId"), event.get("type"), event.get("timestamp")
    if not (isinstance(event_id, str) and 0 < len(event_id) <= 64 and isinstance(kind, str) and kind):
        log.warning("webhook event skipped: no webhookEventId/type (clinic %s)", clinic_id)
        return None
    if not isinstance(ms, int | float) or isinstance(ms, bool) or not 0 < ms < 1e14:
        log.warning("webhook event %s skipped: bad timestamp (clinic %s)", event_id, clinic_id)
        return None
    source = event.get("source") if isinstance(event.get("source"), dict) else {}
    reply_token = event.get("replyToken") if isinstance(event.get("replyToken"), str) else None
    occurred = _timestamp(ms)
    context = event.get("deliveryContext") if isinstance(event.get("deliveryContext"), dict) else {}
    return {
        "clinic_id": clinic_id,
        "webhook_event_id": event_id,
        "event_type": kind[:32],
        "line_user_id": source.get("userId") if isinstance(source.get("userId"), str) else None,
        "occurred_at": occurred,
        "is_redelivery": bool(context.get("isRedelivery")),
        "mode": str(event.get("mode") or "active")[:16],
        "reply_token": reply_token[:255] if reply_token else None,
        "reply_token_expires_at": occurred + REPLY_TOKEN_TTL if reply_token else None,
        "payload": event,
        "state": "pending",
        "attempts": 0,
        "received_at": utcnow(),
    }


def store_events(clinic_id: int, rows: list[dict]) -> list[int]:
    """Insert the rows in one statement; returns the ids of rows that were new."""
    rows = list({row["webhook_event_id"]: row for row in rows}.values())
    if not rows:
        return []
    insert = _INSERTS.get(db.engine.dialect.name)
    if insert is None:  # other databases: one row at a time, duplicates caught by the constraint
        return _store_one_by_one(rows)
    ids = []
    for start in range(0, len(rows), _ROWS_PER_INSERT):
        statement = (
            insert(WebhookEvent)
            .values(rows[start : start + _ROWS_PER_INSERT])
            .on_conflict_do_nothing(index_elements=["clinic_id", "webhook_event_id"])
            .returning(WebhookEvent.id)
        )
        ids.extend(db.session.execute(statement).scalars())
    db.session.commit()
    return ids


def _store_one_by_one(rows: list[dict]) -> list[int]:
    from sqlalchemy.exc import IntegrityError

    ids = []
    for row in rows:
        try:
            with db.session.begin_nested():
                event = WebhookEvent(**row)
                db.session.add(event)
            ids.append(event.id)
        except IntegrityError:
            continue
    db.session.commit()
    return ids


def enqueue_handling(clinic_id: int, event_ids: list[int]) -> None:
    """One job per new event on the default queue, sent to Redis in one pipeline."""
    if not event_ids:
        return
    from saas.webhooks.jobs import handle_webhook_event

    queue = get_queue(DEFAULT)
    jobs = [
        queue.prepare_data(handle_webhook_event, args=(event_id, clinic_id), job_id=f"webhook-event-{event_id}")
        for event_id in event_ids
    ]
    queue.enqueue_many(jobs)


def max_body_bytes() -> int:
    return current_app.config["WEBHOOK_MAX_BYTES"]
