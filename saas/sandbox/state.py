"""In-memory state of the sandbox LINE platform: channels, virtual patients, messages.

One process-wide lock guards everything; network calls (webhook delivery) are made
outside it so a bot may call the API while its webhook is being answered.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

JST = timezone(timedelta(hours=9))
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

# Free messages per month by plan; None means additional messages are allowed without a cap.
PLAN_LIMITS: dict[str, int | None] = {"free": 200, "light": 5000, "standard": None}

# LINE's published per-channel limits: (requests, seconds), keyed by operationId.
LINE_RATE_LIMITS: dict[str, tuple[int, float]] = {
    "narrowcast": (60, 3600),
    "broadcast": (60, 3600),
    "getNumberOfMessageDeliveries": (60, 3600),
    "getNumberOfFollowers": (60, 3600),
    "getMessageEvent": (60, 3600),
    "getStatisticsPerUnit": (60, 3600),
    "testWebhookEndpoint": (60, 3600),
    "setWebhookEndpoint": (1000, 60),
    "getWebhookEndpoint": (1000, 60),
    "createRichMenu": (100, 3600),
    "deleteRichMenu": (100, 3600),
    "deleteRichMenuAlias": (100, 3600),
    "getRichMenuList": (10, 1),
    "multicast": (200, 1),
    "*": (2000, 1),
}


def ulid() -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, 26 chars of Crockford base32."""
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def new_user_id() -> str:
    """A LINE user id: ``U`` followed by 32 lowercase hex characters."""
    return "U" + secrets.token_hex(16)


def new_request_id() -> str:
    """A request id as LINE sends in ``x-line-request-id`` (a UUID)."""
    return str(uuid.uuid4())


def now_ms() -> int:
    """Current time in epoch milliseconds."""
    return int(time.time() * 1000)


def iso_utc(ms: int) -> str:
    """Epoch milliseconds as ISO 8601 UTC with milliseconds, as LINE writes them."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def jst_date(ms: int) -> str:
    """The LINE statistics day (yyyyMMdd, UTC+9) of an epoch-millisecond time."""
    return datetime.fromtimestamp(ms / 1000, JST).strftime("%Y%m%d")


def jst_month(ms: int) -> str:
    """The quota month (yyyyMM, UTC+9) of an epoch-millisecond time."""
    return jst_date(ms)[:6]


@dataclass
class Patient:
    """A virtual LINE user as seen by one channel."""

    user_id: str
    display_name: str
    picture_url: str | None = None
    language: str = "ja"
    status_message: str | None = None
    following: bool = False
    blocked: bool = False
    followed_at: int | None = None
    blocked_at: int | None = None
    rich_menu_id: str | None = None
    inbox: list[dict] = field(default_factory=list)
    sent: list[dict] = field(default_factory=list)

    @property
    def reachable(self) -> bool:
        """Whether messages from the bot reach this user (a friend who has not blocked)."""
        return self.following and not self.blocked


@dataclass
class SentRequest:
    """One accepted send request, for statistics (``/insight/message/event``)."""

    request_id: str
    via: str
    at: int
    delivered: int
    messages: list[dict]
    units: list[str] = field(default_factory=list)
    impressions: set[str] = field(default_factory=set)
    clicks: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class Channel:
    """A Messaging API channel (one clinic's LINE Official Account)."""

    channel_id: str
    secret: str
    access_token: str
    bot_user_id: str
    display_name: str = "サンドボックス公式アカウント"
    basic_id: str = ""
    webhook_url: str | None = None
    webhook_active: bool = True
    plan: str = "free"
    monthly_limit: int | None = None
    reply_token_ttl_s: float = 60.0
    webhook_timeout_s: float = 2.0
    latency_ms: int = 0
    privacy_threshold: int = 0
    aggregation_units: bool = True  # False: the account may not use customAggregationUnits (400)
    # "all": per-request statistics for every send (convenient); "line": as LINE documents them,
    # for broadcast and narrowcast only (push/multicast requests answer 404: use aggregation units).
    request_statistics: str = "all"
    rate_limits: dict[str, tuple[int, float]] = field(default_factory=dict)
    fail_next: list[int] = field(default_factory=list)
    patients: dict[str, Patient] = field(default_factory=dict)
    requests: deque = field(default_factory=lambda: deque(maxlen=5000))
    deliveries: deque = field(default_factory=lambda: deque(maxlen=5000))
    retry_keys: dict[str, dict] = field(default_factory=dict)
    reply_tokens: dict[str, dict] = field(default_factory=dict)
    events: dict[str, dict] = field(default_factory=dict)
    usage: dict[str, int] = field(default_factory=dict)
    daily: dict[tuple[str, str], int] = field(default_factory=dict)
    sent_requests: dict[str, SentRequest] = field(default_factory=dict)
    narrowcasts: dict[str, dict] = field(default_factory=dict)
    hits: dict[str, deque] = field(default_factory=dict)
    rich_menus: dict[str, dict] = field(default_factory=dict)
    rich_menu_images: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    default_rich_menu: str | None = None
    aliases: dict[str, str] = field(default_factory=dict)
    # Media patients sent: message id -> (content type, bytes), served by the content API.
    contents: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    # The followers API is for verified and premium accounts only; others get 403.
    followers_api: bool = True
    # Coupons created through /v2/bot/coupon, by couponId, in creation order.
    coupons: dict[str, dict] = field(default_factory=dict)

    def quota_limit(self) -> int | None:
        """Messages allowed this month, or None when the plan has no cap."""
        if self.monthly_limit is not None:
            return self.monthly_limit
        return PLAN_LIMITS.get(self.plan, 200)

    def usage_this_month(self) -> int:
        """Counted messages sent this month (JST)."""
        return self.usage.get(jst_month(now_ms()), 0)

    def count(self, via: str, recipients: int) -> None:
        """Record delivered messages for quota (not replies) and per-day statistics."""
        at = now_ms()
        if via != "reply":
            month = jst_month(at)
            self.usage[month] = self.usage.get(month, 0) + recipients
        key = (via, jst_date(at))
        self.daily[key] = self.daily.get(key, 0) + recipients

    def allow_rate(self, operation: str) -> bool:
        """Sliding-window rate check for one operation; records the hit when allowed."""
        limit = self.rate_limits.get(operation) or self.rate_limits.get("*")
        if not limit:
            return True
        count, seconds = limit
        window = self.hits.setdefault(operation, deque())
        cutoff = time.monotonic() - seconds
        while window and window[0] < cutoff:
            window.popleft()
        if len(window) >= count:
            return False
        window.append(time.monotonic())
        return True

    def issue_reply_token(self, user_id: str) -> str:
        """A new single-use reply token for an event from ``user_id``."""
        token = secrets.token_hex(16)
        self.reply_tokens[token] = {"userId": user_id, "expires": time.monotonic() + self.reply_token_ttl_s}
        return token

    def use_reply_token(self, token: str) -> str | None:
        """Consume a reply token; the user id it answers, or None if unknown, used or expired."""
        entry = self.reply_tokens.pop(token, None)
        if entry is None or entry["expires"] < time.monotonic():
            return None
        return entry["userId"]


class SandboxState:
    """Every channel of the sandbox platform, behind one lock."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.channels: dict[str, Channel] = {}
        self._message_seq = int(time.time() * 1000) * 1000

    def reset(self) -> None:
        """Forget every channel, patient and message."""
        with self.lock:
            self.channels.clear()

    def next_message_id(self) -> str:
        """A numeric message id, increasing like LINE's."""
        with self.lock:
            self._message_seq += 1
            return str(self._message_seq)

    def next_message_ids(self, count: int) -> list[str]:
        """``count`` consecutive message ids at once (a multicast's recipients)."""
        with self.lock:
            first = self._message_seq + 1
            self._message_seq += count
        return [str(n) for n in range(first, first + count)]

    def by_token(self, token: str) -> Channel | None:
        """The channel whose access token is ``token``."""
        with self.lock:
            for channel in self.channels.values():
                if secrets.compare_digest(channel.access_token, token):
                    return channel
        return None

    def add_channel(self, channel: Channel) -> Channel:
        """Register (or replace) a channel."""
        with self.lock:
            if not channel.basic_id:
                channel.basic_id = "@" + secrets.token_hex(4)[:7] + "x"
            self.channels[channel.channel_id] = channel
            return channel
