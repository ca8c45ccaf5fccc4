"""Helpers for tests that drive webhooks: connected clinics, signed requests, burst workers."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import time

import requests
from rq import SimpleWorker

from saas.extensions import db
from saas.queues import all_queues, get_redis
from tests.factories import gen_clinic

_seq = itertools.count(1)


def connect_clinic(sandbox, live_server, name: str = "つなぐ内科") -> tuple:
    """A clinic with credentials stored and a sandbox channel whose webhook points at it."""
    n = next(_seq)
    channel_id, secret, token = f"20000{n:05d}", f"secret{n:02d}" + "a" * 24, f"token-{n}-" + "b" * 40
    clinic = gen_clinic(name=name, line_channel_id=channel_id, line_channel_secret=secret, line_access_token=token)
    channel = sandbox.add_channel(channel_id, secret, token, webhook_url=webhook_url(live_server, clinic))
    clinic.line_bot_user_id = channel.get("botUserId")
    db.session.commit()
    return clinic, channel_id


def webhook_url(live_server, clinic) -> str:
    return f"{live_server.url}/webhooks/line/{clinic.webhook_key}"


def sign(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def post_events(url: str, secret: str, events: list, *, session=None, signature: str | None = None):
    """POST a webhook body as LINE does (signed unless a signature is given)."""
    body = json.dumps({"destination": "U" + "0" * 32, "events": events}).encode()
    headers = {"content-type": "application/json", "x-line-signature": signature or sign(secret, body)}
    return (session or requests).post(url, data=body, headers=headers, timeout=30)


def text_event(user_id: str, text: str, event_id: str | None = None) -> dict:
    """A LINE message event as the platform shapes it."""
    n = next(_seq)
    return {
        "type": "message",
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "webhookEventId": event_id or f"01TEST{n:020d}",
        "deliveryContext": {"isRedelivery": False},
        "source": {"type": "user", "userId": user_id},
        "replyToken": f"rt{n:030d}",
        "message": {"type": "text", "id": f"{n:018d}", "quoteToken": "q", "text": text},
    }


def run_jobs() -> None:
    """Run every queued job in this process until the queues are empty."""
    SimpleWorker(all_queues(), connection=get_redis()).work(burst=True)
