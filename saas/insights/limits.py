"""Asking LINE's statistics endpoints gently: a per-channel budget and a cool-off after a 429.

LINE allows each statistics endpoint 60 requests an hour per channel (line-platform.md §1.7).
A token bucket of 20 refilled at 40 an hour never spends more than 60 in any hour, leaving the
rest for staff using LINE's own tools. A 429 cools the channel off (2, 4, 8 … up to 60 minutes):
no statistics call for that channel until then, whatever the endpoint.
"""

from __future__ import annotations

from flask import current_app

from saas.delivery.ratelimit import take_from_bucket
from saas.queues import get_redis

INSIGHT_LIMITS = {  # endpoint -> (bucket size, refill seconds for that many)
    "getMessageEvent": (20, 1800.0),
    "getStatisticsPerUnit": (20, 1800.0),
    "getNumberOfFollowers": (20, 1800.0),
    "getNumberOfMessageDeliveries": (20, 1800.0),
    "getFriendsDemographics": (20, 1800.0),
}
COOL_OFF_FIRST, COOL_OFF_MAX = 120, 3600


def _channel(clinic) -> str:
    return clinic.line_channel_id or str(clinic.id)


def _key(clinic, what: str) -> str:
    return f"tsunagu:{{ch:{_channel(clinic)}}}:insight:{what}"


def may_call(clinic, endpoint: str) -> bool:
    """Take one call from the channel's budget for ``endpoint``; False when spent or cooling off."""
    if cooling_off(clinic):
        return False
    size, seconds = {**INSIGHT_LIMITS, **(current_app.config.get("INSIGHT_RATE_LIMITS") or {})}[endpoint]
    return take_from_bucket(_key(clinic, f"ratelimit:{endpoint}"), size, seconds) <= 0


def cooling_off(clinic) -> float:
    """Seconds left of the channel's cool-off after a 429 (0 when none)."""
    left = get_redis().pttl(_key(clinic, "cool-off"))
    return max(left, 0) / 1000.0


def cool_off(clinic) -> int:
    """LINE answered 429: pause this channel's statistics calls, longer each time in a row."""
    redis = get_redis()
    strikes = redis.incr(_key(clinic, "strikes"))
    redis.expire(_key(clinic, "strikes"), 2 * COOL_OFF_MAX)
    seconds = min(COOL_OFF_MAX, COOL_OFF_FIRST * 2 ** (strikes - 1))
    redis.set(_key(clinic, "cool-off"), "1", ex=seconds)
    return seconds


def forgive(clinic) -> None:
    """A call went through: the next 429 starts the back-off afresh."""
    get_redis().delete(_key(clinic, "strikes"))
