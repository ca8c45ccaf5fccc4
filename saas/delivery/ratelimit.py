"""A per-channel, per-endpoint token bucket in Redis, so every clinic stays inside LINE's limits.

Buckets are keyed by the clinic's channel and the endpoint: one clinic spending its multicast
budget never touches another clinic's. The check-and-take is one Lua script (Redis 6.2 safe:
GET/SET-style hash commands and PEXPIRE only), so any number of workers share a bucket.
"""

from __future__ import annotations

import time

from flask import current_app

from saas.queues import get_redis

# LINE's published per-channel limits: endpoint -> (requests, per seconds).
LINE_LIMITS: dict[str, tuple[int, float]] = {
    "multicast": (200, 1.0),
    "push": (2000, 1.0),
    "broadcast": (60, 3600.0),
    "narrowcast": (60, 3600.0),
}

# KEYS[1] bucket; ARGV: capacity, refill per second, now (s, float), cost.
# Returns 0 when taken, else the milliseconds until enough tokens are back.
_TAKE = """
local capacity, rate = tonumber(ARGV[1]), tonumber(ARGV[2])
local now, cost = tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens, at = tonumber(state[1]), tonumber(state[2])
if not tokens then tokens, at = capacity, now end
tokens = math.min(capacity, tokens + math.max(now - at, 0) * rate)
local wait = 0
if tokens >= cost then tokens = tokens - cost else wait = math.ceil((cost - tokens) / rate * 1000) end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(capacity / rate * 1000) + 1000)
return wait
"""


def limits() -> dict[str, tuple[int, float]]:
    """The limits in force (``DELIVERY_RATE_LIMITS`` overrides LINE's, e.g. for benchmarks)."""
    return {**LINE_LIMITS, **(current_app.config.get("DELIVERY_RATE_LIMITS") or {})}


def bucket_key(channel: str, endpoint: str) -> str:
    """The channel's bucket; the hash tag keeps a channel's buckets in one Redis Cluster slot."""
    return f"tsunagu:{{ch:{channel}}}:ratelimit:{endpoint}"


def try_take(channel: str, endpoint: str, *, now: float | None = None) -> float:
    """Take one request from the channel's bucket: 0.0 if allowed, else seconds to wait."""
    limit = limits().get(endpoint)
    if not limit:
        return 0.0
    count, seconds = limit
    return take_from_bucket(bucket_key(channel, endpoint), count, seconds, now=now)


def take_from_bucket(key: str, count: int, seconds: float, *, now: float | None = None) -> float:
    """Take one token from the bucket ``key`` (``count`` per ``seconds``): 0.0, or seconds to wait.

    Any caller's bucket (an API key's too) works the same way; put a hash tag in ``key``.
    """
    wait_ms = get_redis().eval(_TAKE, 1, key, count, count / seconds, now or time.time(), 1)
    return int(wait_ms) / 1000.0


def take(channel: str, endpoint: str, *, max_wait: float) -> float:
    """Take a request, sleeping for short waits; returns 0.0 or the (long) wait left to the caller."""
    while True:
        wait = try_take(channel, endpoint)
        if wait <= 0:
            return 0.0
        if wait > max_wait:
            return wait
        time.sleep(wait)
