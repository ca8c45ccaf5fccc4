"""Our own exceptions for LINE's answers, so callers never handle the SDK's ApiException.

The send pipeline decides with these alone: retry later (rate limit, server error, network),
stop (monthly limit), count as sent (retry key already accepted) or give up (rejected).
"""

from __future__ import annotations

import json

from linebot.v3.messaging import ApiException


class LineError(RuntimeError):
    """Any failure talking to LINE. ``status`` is the HTTP status (None: no answer at all)."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, details: list | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.details = details or []


class LineRateLimited(LineError):
    """429 for the per-endpoint rate limit: retry later with the same retry key."""

    retryable = True


class LineMonthlyLimitReached(LineError):
    """429 "You have reached your monthly limit.": no more billable messages this month."""


class LineRetryKeyAccepted(LineError):
    """409: a request with this retry key was already accepted, i.e. the messages were sent."""

    def __init__(self, message: str, *, accepted_request_id: str | None, **kwargs):
        super().__init__(message, **kwargs)
        self.accepted_request_id = accepted_request_id


class LineServerError(LineError):
    """5xx, a timeout or no connection: LINE's side, safe to retry with the same retry key."""

    retryable = True


class LineRequestRejected(LineError):
    """Any other 4xx (bad token, invalid message, expired reply token...): do not retry as is."""


MONTHLY_LIMIT_MESSAGE = "You have reached your monthly limit."


def _error_body(exception: ApiException) -> dict:
    raw = exception.body
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {"message": raw}
    return body if isinstance(body, dict) else {}


def _header(exception: ApiException, name: str) -> str | None:
    headers = exception.headers or {}
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def translate(exception: ApiException) -> LineError:
    """Map the SDK's ApiException to one of our exceptions (keeps LINE's message and details)."""
    body = _error_body(exception)
    status = exception.status
    message = body.get("message") or exception.reason or f"LINE answered {status}"
    kwargs = {"status": status, "details": body.get("details") or []}
    if status == 429:
        if MONTHLY_LIMIT_MESSAGE.rstrip(".").lower() in message.lower():
            return LineMonthlyLimitReached(message, **kwargs)
        return LineRateLimited(message, **kwargs)
    if status == 409:
        return LineRetryKeyAccepted(
            message, accepted_request_id=_header(exception, "x-line-accepted-request-id"), **kwargs
        )
    if status is None or status >= 500:
        return LineServerError(message, **kwargs)
    return LineRequestRejected(message, **kwargs)
