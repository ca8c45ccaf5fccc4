"""Idempotency-Key for POSTs that send: a retry of the same request replays the first answer.

The key is claimed in its own commit before the work starts (a unique row per API key and
Idempotency-Key), so two concurrent retries cannot both send: the second one gets 409 while
the first runs, and the first one's answer once it is done. The same key with another body is
a client error (422), never a second send.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import timedelta

import sqlalchemy as sa
from flask import Response, g, jsonify, request
from sqlalchemy.exc import IntegrityError

from saas.api.models import ApiIdempotency
from saas.api.problems import ApiProblem
from saas.api.spec import IDEMPOTENCY_HEADER
from saas.common import utcnow
from saas.extensions import db

KEEP = timedelta(hours=24)
KEY_FORMAT = re.compile(r"[!-~]{1,255}")  # as the document says: visible ASCII, no spaces


def _fingerprint() -> str:
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    digest.update(request.get_data())
    return digest.hexdigest()


def _replay(row: ApiIdempotency) -> Response:
    response = jsonify(row.body)
    response.status_code = row.status_code
    response.headers["Idempotent-Replayed"] = "true"
    return response


def _claim(key: str, fingerprint: str) -> ApiIdempotency | None:
    """Our new row, or None when this key was used before (then the earlier row decides)."""
    row = ApiIdempotency(api_key_id=g.api_key.id, key=key, fingerprint=fingerprint)
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        return None
    return row


def _earlier(key: str) -> ApiIdempotency | None:
    return db.session.scalars(
        sa.select(ApiIdempotency).where(ApiIdempotency.api_key_id == g.api_key.id, ApiIdempotency.key == key)
    ).first()


def run_once(work: Callable[[], tuple[dict, int]], *, required: bool) -> Response | tuple[dict, int]:
    """Run ``work`` (returning a JSON body and a status) at most once per Idempotency-Key."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if key is None:
        if required:
            raise ApiProblem(422, f"Send an {IDEMPOTENCY_HEADER} header (any unique string per send).")
        return work()
    if not KEY_FORMAT.fullmatch(key):
        raise ApiProblem(422, f"{IDEMPOTENCY_HEADER} must be 1 to 255 visible ASCII characters.")
    fingerprint = _fingerprint()
    row = _claim(key, fingerprint)
    if row is None:
        earlier = _earlier(key)
        if earlier is None or earlier.fingerprint != fingerprint:
            raise ApiProblem(422, f"This {IDEMPOTENCY_HEADER} was used for a different request.")
        if earlier.status_code is None:
            raise ApiProblem(409, "The first request with this Idempotency-Key is still being processed.")
        return _replay(earlier)
    try:
        body, status = work()
    except BaseException:
        db.session.rollback()
        db.session.execute(sa.delete(ApiIdempotency).where(ApiIdempotency.id == row.id))
        db.session.commit()
        raise
    db.session.execute(
        sa.update(ApiIdempotency).where(ApiIdempotency.id == row.id).values(status_code=status, body=body)
    )
    db.session.commit()
    return body, status


def purge_expired() -> int:
    """Forget answers older than a day (a retry after that would be a new request)."""
    result = db.session.execute(sa.delete(ApiIdempotency).where(ApiIdempotency.created_at < utcnow() - KEEP))
    db.session.commit()
    return result.rowcount
