"""Is this a webhook event LINE could have sent? Checked before anything is stored.

The shapes come from the line-bot-sdk's webhook models (``linebot.v3.webhooks``), which are
generated from LINE's ``webhook.yml``: event and message types, required fields, strict
types. On top of that, what our tables and databases need: ids that fit their columns, text
without NUL bytes or lone UTF-16 surrogates (Postgres and the UTF-8 encoder refuse both; they
become U+FFFD so the message still reaches the inbox), finite numbers, bounded nesting.

:func:`clean_event` returns the cleaned event or ``None`` with the reason logged, so one bad
event is skipped and the rest of its batch is stored.
"""

from __future__ import annotations

import logging
import math
import re

from linebot.v3.webhooks import Event

log = logging.getLogger(__name__)

MAX_DEPTH = 24  # LINE's deepest events nest about 6 levels (message.mention.mentionees[].…)
MAX_ID = 64  # webhook_event.webhook_event_id, friend.line_user_id, message.line_message_id
MAX_REPLY_TOKEN = 255
_UNSAFE_TEXT = re.compile("[\x00\ud800-\udfff]")


class InvalidEvent(ValueError):
    """Why an event is skipped (logged, never shown to LINE)."""


def clean_text(text: str) -> str:
    """``text`` without NUL bytes or lone surrogates (each replaced by U+FFFD)."""
    return _UNSAFE_TEXT.sub("\ufffd", text) if _UNSAFE_TEXT.search(text) else text


def _clean(value, depth: int = 0):
    if depth > MAX_DEPTH:
        raise InvalidEvent("nested too deeply")
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, dict):
        return {clean_text(str(key)): _clean(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean(item, depth + 1) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidEvent("a number is not finite")
    return value


def _within(value, limit: int, name: str, *, required: bool = False) -> None:
    if value is None and not required:
        return
    if not isinstance(value, str) or not 0 < len(value) <= limit:
        raise InvalidEvent(f"{name} must be a string of 1 to {limit} characters")


def _check_fits_our_tables(event: dict) -> None:
    _within(event.get("webhookEventId"), MAX_ID, "webhookEventId", required=True)
    _within(event.get("replyToken"), MAX_REPLY_TOKEN, "replyToken")
    source = event.get("source")
    if isinstance(source, dict):
        _within(source.get("userId"), MAX_ID, "source.userId")
    message = event.get("message")
    if isinstance(message, dict):
        _within(message.get("id"), MAX_ID, "message.id", required=True)
    timestamp = event.get("timestamp")
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or not 0 < timestamp < 10**14:
        raise InvalidEvent("timestamp must be epoch milliseconds")


def _check_line_schema(event: dict) -> None:
    try:
        Event.from_dict(event)
    except Exception as exc:  # the generated models raise KeyError, TypeError, ValueError, ValidationError...
        raise InvalidEvent(f"not a LINE webhook event: {type(exc).__name__}: {str(exc)[:300]}") from exc


def check_event(event) -> dict:
    """The event cleaned (NULs and lone surrogates replaced), or :class:`InvalidEvent`."""
    if not isinstance(event, dict):
        raise InvalidEvent("an event must be an object")
    cleaned = _clean(event)
    _check_fits_our_tables(cleaned)
    _check_line_schema(cleaned)
    return cleaned


def clean_event(clinic_id: int, event) -> dict | None:
    """:func:`check_event`, logging and returning None for an event to skip."""
    try:
        return check_event(event)
    except InvalidEvent as exc:
        event_id = event.get("webhookEventId") if isinstance(event, dict) else None
        log.warning("webhook event %r of clinic %s skipped: %s", str(event_id)[:80], clinic_id, exc)
        return None
