"""Webhook delivery signed as Stripe signs: ``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256>``."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

import requests

from . import objects
from .state import StripeState

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
TIMEOUT_SECONDS = 10


def signature_header(secret: str, payload: bytes, timestamp: int | None = None) -> str:
    """The header for this payload: HMAC-SHA256 over ``"{t}.{payload}"`` keyed with the endpoint secret."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signed = f"{timestamp}.".encode() + payload
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def payload_of(st: StripeState, event_id: str) -> bytes:
    return json.dumps(objects.event(st.events[event_id]), ensure_ascii=False, indent=2).encode()


def deliver(st: StripeState, event_ids: list[str], *, force: bool = False) -> list[dict]:
    """POST each event in order to the webhook endpoint (unless held); call WITHOUT the lock."""
    with st.lock:
        if st.hold_events and not force:
            st.held += event_ids
            return []
        url, secret = st.webhook_url, st.webhook_secret
        payloads = [(event_id, payload_of(st, event_id)) for event_id in event_ids]
    if not url or not secret:
        return []
    results = []
    for event_id, payload in payloads:
        status = _post(url, secret, payload)
        with st.lock:
            st.events[event_id].deliveries.append({"status": status, "at": st.now()})
        results.append({"id": event_id, "status": status})
    return results


def _post(url: str, secret: str, payload: bytes) -> int:
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "Stripe-Signature": signature_header(secret, payload),
        "User-Agent": USER_AGENT,
    }
    try:
        return requests.post(url, data=payload, headers=headers, timeout=TIMEOUT_SECONDS).status_code
    except requests.RequestException:
        return 0
