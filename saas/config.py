"""Configuration read from environment variables (documented in README.md)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("TSUNAGU_INSTANCE_DIR", ROOT / "instance"))


def _bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _database_url() -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return f"sqlite:///{INSTANCE_DIR / 'tsunagu.sqlite3'}"
    # Heroku-style URLs name the driver "postgres"; SQLAlchemy wants psycopg 3 spelled out.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


# Send-pipeline timings (seconds) a deployment may tune; unset means the defaults in saas/delivery.
DELIVERY_SETTINGS = (
    "DELIVERY_STALE_SECONDS",
    "DELIVERY_RETRY_WINDOW_SECONDS",
    "DELIVERY_RETRY_BASE_SECONDS",
    "DELIVERY_RETRY_CAP_SECONDS",
    "DELIVERY_INLINE_WAIT_SECONDS",
)


def _delivery_settings() -> dict:
    return {name: float(os.environ[name]) for name in DELIVERY_SETTINGS if os.environ.get(name)}


def from_environment() -> dict:
    """Build the Flask config mapping from the process environment."""
    return _delivery_settings() | {
        "SECRET_KEY": os.environ.get("SECRET_KEY", "dev-only-secret-change-me"),
        "ENCRYPTION_KEY": os.environ.get("ENCRYPTION_KEY", ""),
        "SQLALCHEMY_DATABASE_URI": _database_url(),
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        "EMBEDDED_REDIS_PATH": os.environ.get("EMBEDDED_REDIS_PATH", str(INSTANCE_DIR / "redis" / "tsunagu.rdb")),
        "LINE_API_BASE": os.environ.get("LINE_API_BASE", "https://api.line.me"),
        "LINE_DATA_API_BASE": os.environ.get("LINE_DATA_API_BASE", "https://api-data.line.me"),
        "LINE_LOGIN_BASE": os.environ.get("LINE_LOGIN_BASE", "https://access.line.me"),
        "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000"),
        "SANDBOX_ENABLED": _bool("SANDBOX_ENABLED", False),
        "SESSION_IDLE_MINUTES": int(os.environ.get("SESSION_IDLE_MINUTES", "30")),
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=int(os.environ.get("SESSION_MAX_HOURS", "12"))),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", False),
        "LOGIN_ATTEMPTS_PER_MINUTE": int(os.environ.get("LOGIN_ATTEMPTS_PER_MINUTE", "5")),
        "WEBHOOK_MAX_BYTES": int(os.environ.get("WEBHOOK_MAX_BYTES", str(1024 * 1024))),
        "MEDIA_MAX_BYTES": int(os.environ.get("MEDIA_MAX_BYTES", str(20 * 1024 * 1024))),
        "RETENTION_ARCHIVE_DIR": os.environ.get("RETENTION_ARCHIVE_DIR", str(INSTANCE_DIR / "archive")),
        "BABEL_DEFAULT_LOCALE": "ja",
        "BABEL_DEFAULT_TIMEZONE": "Asia/Tokyo",
        "BABEL_TRANSLATION_DIRECTORIES": str(ROOT / "saas" / "translations"),
        "STRIPE_SECRET_KEY": os.environ.get("STRIPE_SECRET_KEY", ""),
        "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET", ""),
        "WTF_CSRF_TIME_LIMIT": None,
        # How many reverse proxies (TLS terminators, load balancers) stand in front of the app;
        # their X-Forwarded-For/-Proto are trusted only when this says so (a client could forge them).
        "TRUSTED_PROXIES": int(os.environ.get("TRUSTED_PROXIES", "0")),
    }
