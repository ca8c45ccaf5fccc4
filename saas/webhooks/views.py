"""``POST /webhooks/line/<webhook_key>``: the endpoint LINE calls for each clinic.

LINE's deliveries are answered by :class:`WebhookIngress`, a WSGI middleware in front of Flask:
a delivery needs none of what a portal page does (session cookie, signed-in user, locale,
CSRF, the tenant taken from the URL, HTML security headers), and those hooks were a fifth of
its CPU. The blueprint route below does the same work (one function, :func:`receive`) for a
caller that reaches Flask directly and keeps ``url_for("webhooks.line_webhook")`` working.
"""

from __future__ import annotations

import json
import logging
import time
from http import HTTPStatus

import sqlalchemy as sa
from flask import Blueprint, Flask, request
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from saas.extensions import csrf, db
from saas.tenancy.models import Clinic
from saas.webhooks import ingest

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
csrf.exempt(bp)

PATH_PREFIX = "/webhooks/line/"
SECRET_CACHE_SECONDS = 30.0
_secrets: dict[str, tuple[int, str | None, float]] = {}  # webhook key -> (clinic id, secret, fetched at)
_HEADERS = [
    ("Content-Type", "text/plain; charset=utf-8"),
    ("Content-Length", "0"),
    ("X-Content-Type-Options", "nosniff"),
]


class Refused(Exception):
    """The delivery is answered with this status and nothing is stored."""

    def __init__(self, status: int):
        super().__init__(status)
        self.status = status


def _clinic_secret(webhook_key: str, *, fresh: bool = False) -> tuple[int, str | None]:
    """(clinic id, channel secret) for the key; only the secret is decrypted.

    Kept in this process for ``SECRET_CACHE_SECONDS``: a query and a decryption per delivery
    were a third of a request. A signature that fails against a kept secret is checked again
    against the stored one (``fresh``), so a changed secret works at once.
    """
    kept = _secrets.get(webhook_key)
    if kept and not fresh and time.monotonic() - kept[2] < SECRET_CACHE_SECONDS:
        return kept[0], kept[1]
    with db.engine.connect() as connection:
        found = connection.execute(
            sa.select(Clinic.id, Clinic.line_channel_secret).where(Clinic.webhook_key == webhook_key)
        ).first()
    if found is None:
        _secrets.pop(webhook_key, None)
        raise Refused(404)
    if len(_secrets) > 10_000:
        _secrets.clear()
    _secrets[webhook_key] = (found.id, found.line_channel_secret, time.monotonic())
    return found.id, found.line_channel_secret


def _verify(webhook_key: str, secret: str | None, body: bytes, signature: str | None) -> None:
    """Refused (401) unless the body's signature is valid for the clinic's channel secret."""
    if not ingest.signature_valid(secret or "", body, signature):
        clinic_id, secret = _clinic_secret(webhook_key, fresh=True)
        if not ingest.signature_valid(secret or "", body, signature):
            log.warning("webhook with a bad signature for clinic %s", clinic_id)
            raise Refused(401)


def _read_body(environ: dict) -> bytes:
    limit = ingest.max_body_bytes()
    try:
        body = get_input_stream(environ, max_content_length=limit).read(limit + 1)
    except RequestEntityTooLarge:
        raise Refused(413) from None
    if len(body) > limit:
        raise Refused(413)
    return body


def _parse(body: bytes) -> list:
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond the parser's limit
        raise Refused(400) from None
    events = payload.get("events") if isinstance(payload, dict) else None
    if not isinstance(events, list):
        raise Refused(400)
    return events


def receive(webhook_key: str, environ: dict) -> int:
    """Verify, store and enqueue one delivery; returns the HTTP status. Never calls LINE."""
    try:
        clinic_id, secret = _clinic_secret(webhook_key)
        body = _read_body(environ)
        _verify(webhook_key, secret, body, environ.get("HTTP_X_LINE_SIGNATURE"))
        events = _parse(body)
    except Refused as refused:
        return refused.status
    rows = [row for row in (ingest.row_for(clinic_id, event) for event in events) if row]
    ingest.store_and_enqueue(clinic_id, rows)
    return 200


@bp.post("/line/<webhook_key>")
def line_webhook(webhook_key: str):
    """Verify, store and enqueue; the workers do the rest (reached when :class:`WebhookIngress` is not in front)."""
    return "", receive(webhook_key, request.environ)


def _webhook_key(environ: dict) -> str | None:
    path = environ.get("PATH_INFO", "")
    if environ.get("REQUEST_METHOD") != "POST" or not path.startswith(PATH_PREFIX):
        return None
    key = path[len(PATH_PREFIX) :]
    return key if key and "/" not in key else None


class WebhookIngress:
    """WSGI middleware: LINE's deliveries are answered here, everything else goes on to Flask."""

    def __init__(self, app: Flask, wsgi_app):
        self.app, self.wsgi_app = app, wsgi_app

    def __call__(self, environ: dict, start_response):
        webhook_key = _webhook_key(environ)
        if webhook_key is None:
            return self.wsgi_app(environ, start_response)
        with self.app.app_context():
            try:
                status = receive(webhook_key, environ)
            except Exception:  # answered 500 so LINE redelivers; logged as Flask would
                log.exception("webhook delivery failed")
                status = 500
        start_response(f"{status} {HTTPStatus(status).phrase}", list(_HEADERS))
        return [b""]


def _install(state) -> None:
    state.app.wsgi_app = WebhookIngress(state.app, state.app.wsgi_app)


bp.record_once(_install)
