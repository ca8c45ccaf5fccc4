"""Signed webhook delivery to a channel's webhook URL, with LINE's event JSON."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
import time

import requests

from .state import Channel, Patient, SandboxState, iso_utc, now_ms, ulid

USER_AGENT = "LineBotWebhook/2.0"


def signature(secret: str, body: bytes) -> str:
    """``x-line-signature``: base64(HMAC-SHA256(channel secret, raw body))."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def base_event(kind: str, patient: Patient) -> dict:
    """The fields every user event carries."""
    return {
        "type": kind,
        "mode": "active",
        "timestamp": now_ms(),
        "source": {"type": "user", "userId": patient.user_id},
        "webhookEventId": ulid(),
        "deliveryContext": {"isRedelivery": False},
    }


def follow_event(found: Channel, patient: Patient, *, unblocked: bool) -> dict:
    """A follow event (friend added, or unblocked) with a reply token."""
    event = base_event("follow", patient)
    event["replyToken"] = found.issue_reply_token(patient.user_id)
    event["follow"] = {"isUnblocked": unblocked}
    return event


def unfollow_event(patient: Patient) -> dict:
    """An unfollow event (the user blocked the account); no reply token."""
    return base_event("unfollow", patient)


def text_event(found: Channel, patient: Patient, text: str, message_id: str) -> dict:
    """A text message event."""
    event = base_event("message", patient)
    event["replyToken"] = found.issue_reply_token(patient.user_id)
    event["message"] = {
        "type": "text",
        "id": message_id,
        "text": text,
        "quoteToken": "q" + message_id,
        "markAsReadToken": "r" + message_id,
    }
    return event


def media_event(found: Channel, patient: Patient, kind: str, message_id: str, extra: dict) -> dict:
    """An image, video, audio or file message event; the content waits on the content API."""
    event = base_event("message", patient)
    event["replyToken"] = found.issue_reply_token(patient.user_id)
    message = {"type": kind, "id": message_id, **extra}
    if kind != "file":
        message["contentProvider"] = {"type": "line"}
    if kind in ("image", "video"):
        message["quoteToken"] = "q" + message_id
    event["message"] = message
    return event


def unsend_event(patient: Patient, message_id: str) -> dict:
    """The patient unsent one of their messages; no reply token."""
    event = base_event("unsend", patient)
    event["unsend"] = {"messageId": message_id}
    return event


def postback_event(found: Channel, patient: Patient, data: str, params: dict | None) -> dict:
    """A postback event (rich menu or button tap)."""
    event = base_event("postback", patient)
    event["replyToken"] = found.issue_reply_token(patient.user_id)
    event["postback"] = {"data": data, **({"params": params} if params else {})}
    return event


def post_signed(found: Channel, url: str, events: list, timeout: float | None = None) -> dict:
    """POST one webhook request; returns ``{"status", "reason", "detail", "ms"}`` (status 0 when
    no answer came). Called WITHOUT the state lock held."""
    body = json.dumps({"destination": found.bot_user_id, "events": events}, ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "x-line-signature": signature(found.secret, body),
        "User-Agent": USER_AGENT,
    }
    started = time.monotonic()
    try:
        answer = requests.post(url, data=body, headers=headers, timeout=timeout or found.webhook_timeout_s)
        status, reason = answer.status_code, ("OK" if answer.ok else "ERROR_STATUS_CODE")
        detail = f"{answer.status_code} {answer.reason}"
    except requests.Timeout:
        status, reason, detail = 0, "REQUEST_TIMEOUT", "request timed out"
    except requests.RequestException as error:
        status, reason, detail = 0, "COULD_NOT_CONNECT", type(error).__name__
    return {"status": status, "reason": reason, "detail": detail, "ms": int((time.monotonic() - started) * 1000)}


def send(state: SandboxState, found: Channel, events: list) -> int | None:
    """Deliver ``events`` as one signed request to the channel's webhook; remember well-formed
    events for redelivery and log the outcome. The status code, or None if no webhook is set."""
    with state.lock:
        for event in events:
            if isinstance(event, dict) and isinstance(event.get("webhookEventId"), str):
                found.events[event["webhookEventId"]] = copy.deepcopy(event)
        url = found.webhook_url if found.webhook_active else None
    if not url:
        return None
    outcome = post_signed(found, url, events)
    with state.lock:
        found.deliveries.append(
            {
                "at": iso_utc(now_ms()),
                "url": url,
                "status": outcome["status"],
                "reason": outcome["reason"],
                "ms": outcome["ms"],
                "webhookEventIds": [e.get("webhookEventId") for e in events if isinstance(e, dict)],
            }
        )
    return outcome["status"]


def redelivery_of(found: Channel, webhook_event_id: str) -> dict | None:
    """A copy of a delivered event marked as redelivered (same webhookEventId)."""
    event = found.events.get(webhook_event_id)
    if event is None:
        return None
    again = copy.deepcopy(event)
    again["deliveryContext"] = {"isRedelivery": True}
    return again
