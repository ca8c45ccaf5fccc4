"""Throttles for the password and two-factor steps, counted in Redis so every process shares them.

Each counter is a fixed window that starts at its first failure. Login failures are counted per
(email, address) pair, per address and per email. The pair and address limits refuse; the email
limit pauses only addresses where that user has never signed in, so an attacker spraying one
email from many addresses cannot lock the real user out of their usual place of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import gettext as _

from saas.common import to_local, utcnow
from saas.queues import get_redis


class Throttled(Exception):
    """Too many failures; ``until`` (naive UTC) is when the pause ends."""

    def __init__(self, until: datetime, reason: str):
        super().__init__(reason)
        self.until = until
        self.reason = reason


def pause_message(paused: Throttled) -> str:
    """What the page says: when the pause ends, in Japan time."""
    return _(
        "失敗が続いたため、一時的に停止しています。%(time)s（日本時間）以降にもう一度お試しください。",
        time=to_local(paused.until).strftime("%H:%M:%S"),
    )


@dataclass(frozen=True)
class Counter:
    key: str
    limit: int
    window_seconds: int


def _login_counters(email: str, address: str, *, known_address: bool) -> list[Counter]:
    config = current_app.config
    email = email.strip().lower()
    counters = [
        Counter(f"{{login-failures}}:pair:{email}:{address}", config["LOGIN_ATTEMPTS_PER_MINUTE"], 60),
        Counter(f"{{login-failures}}:addr:{address}", config["LOGIN_ATTEMPTS_PER_ADDRESS"], 60),
    ]
    if not known_address:
        window = config["LOGIN_EMAIL_WINDOW_MINUTES"] * 60
        counters.append(Counter(f"{{login-failures}}:email:{email}", config["LOGIN_ATTEMPTS_PER_EMAIL"], window))
    return counters


def _totp_counters(user_id: int, address: str) -> list[Counter]:
    config = current_app.config
    window = config["TOTP_WINDOW_MINUTES"] * 60
    return [
        Counter(f"{{totp-failures}}:user:{user_id}", config["TOTP_ATTEMPTS_PER_USER"], window),
        Counter(f"{{totp-failures}}:addr:{address}", config["TOTP_ATTEMPTS_PER_ADDRESS"], window),
    ]


def _ensure_below(counters: list[Counter]) -> None:
    redis = get_redis()
    pipe = redis.pipeline()
    for counter in counters:
        pipe.get(counter.key)
        pipe.ttl(counter.key)
    values = pipe.execute()
    waits = []
    for index, counter in enumerate(counters):
        count, ttl = int(values[2 * index] or 0), values[2 * index + 1]
        if count >= counter.limit:
            waits.append((ttl if ttl and ttl > 0 else counter.window_seconds, counter.key.split(":")[1]))
    if waits:
        seconds, reason = max(waits)
        raise Throttled(utcnow() + timedelta(seconds=seconds), reason)


def _hit(counters: list[Counter]) -> None:
    pipe = get_redis().pipeline()
    for counter in counters:
        pipe.set(counter.key, 0, ex=counter.window_seconds, nx=True)  # the window starts at the first failure
        pipe.incr(counter.key)
    pipe.execute()


def ensure_login_allowed(email: str, address: str, *, known_address: bool) -> None:
    """Raise Throttled when this email/address may not try a password now."""
    _ensure_below(_login_counters(email, address, known_address=known_address))


def record_login_failure(email: str, address: str) -> None:
    _hit(_login_counters(email, address, known_address=False))


def clear_login_failures(email: str, address: str) -> None:
    """After a successful sign-in the pair starts afresh (the address and email counters do not)."""
    get_redis().delete(_login_counters(email, address, known_address=True)[0].key)


def ensure_totp_allowed(user_id: int, address: str) -> None:
    """Raise Throttled when this user or address entered too many wrong codes."""
    _ensure_below(_totp_counters(user_id, address))


def record_totp_failure(user_id: int, address: str) -> None:
    _hit(_totp_counters(user_id, address))


def clear_totp_failures(user_id: int, address: str) -> None:
    get_redis().delete(_totp_counters(user_id, address)[0].key)


def ensure_reset_request_allowed(email: str, address: str) -> None:
    """Password-reset emails: a few per email and per address every 15 minutes (counted when asked)."""
    counters = [
        Counter(f"reset-requests:email:{email.strip().lower()}", 3, 900),
        Counter(f"reset-requests:addr:{address}", 10, 900),
    ]
    _ensure_below(counters)
    _hit(counters)
