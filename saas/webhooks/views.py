"""``POST /webhooks/line/<webhook_key>``: the endpoint LINE calls for each clinic."""

from __future__ import annotations

import json
import logging
import time

import sqlalchemy as sa
from flask import Blueprint, abort, request

from saas.extensions import csrf, db
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import tenant_scope
from saas.webhooks import ingest

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)


SECRET_CACHE_SECONDS = 30.0
_secrets: dict[str, tuple[int, str | None, float]] = {}  # webhook key -> (clinic id, secret, fetched at)


def _clinic_secret(webhook_key: str, *, fresh: bool = False) -> tuple[int, str | None]:
    """(clinic id, channel secret) for the key; only the secret is decrypted.

    Kept in this process for ``SECRET_CACHE_SECONDS``: a query and a decryption per delivery
    were a third of a request. A signature that fails against a kept secret is checked again
    against the stored one (``fresh``), so a changed secret works at once.
    """
    kept = _secrets.get(webhook_key)
    if kept and not fresh and time.monotonic() - kept[2] < SECRET_CACHE_SECONDS:
        return kept[0], kept[1]
    found = db.session.execute(
        sa.select(Clinic.id, Clinic.line_channel_secret).where(Clinic.webhook_key == webhook_key)
    ).first()
    if found is None:
        _secrets.pop(webhook_key, None)
        abort(404)
    if len(_secrets) > 10_000:
        _secrets.clear()
    _secrets[webhook_key] = (found.id, found.line_channel_secret, time.monotonic())
    return found.id, found.line_channel_secret


def _verify(webhook_key: str, secret: str | None, body: bytes) -> None:
    """401 unless the body's signature is valid for the clinic's channel secret."""
    signature = request.headers.get("x-line-signature")
    if not ingest.signature_valid(secret or "", body, signature):
        clinic_id, secret = _clinic_secret(webhook_key, fresh=True)
        if not ingest.signature_valid(secret or "", body, signature):
            log.warning("webhook with a bad signature for clinic %s", clinic_id)
            abort(401)


def _read_body() -> bytes:
    limit = ingest.max_body_bytes()
    if request.content_length is not None and request.content_length > limit:
        abort(413)
    body = request.stream.read(limit + 1)
    if len(body) > limit:
        abort(413)
    return body


def _parse(body: bytes) -> list:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond the parser's limit
        abort(400)
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        abort(400)
    return events


@bp.post("/line/<webhook_key>")
def line_webhook(webhook_key: str):
    """Verify, store and enqueue; the workers do the rest. Always fast, never calls LINE."""
    clinic_id, secret = _clinic_secret(webhook_key)
    body = _read_body()
    _verify(webhook_key, secret, body)
    events = _parse(body)
    rows = [row for row in (ingest.row_for(clinic_id, event) for event in events) if row]
    with tenant_scope(clinic_id):
        new_ids = ingest.store_events(clinic_id, rows)
    ingest.enqueue_handling(clinic_id, new_ids)
    return "", 200
