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
        "SECRET_KEY": os.environ.get("SECRET_KEY", ""),  # required outside development (create_app checks)
        "ENCRYPTION_KEY": os.environ.get("ENCRYPTION_KEY", ""),
        "SQLALCHEMY_DATABASE_URI": _database_url(),
        # A webhooks worker runs up to 32 friends' events at once (saas/webhooks/jobs.py): room for them.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 30},
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        "EMBEDDED_REDIS_PATH": os.environ.get("EMBEDDED_REDIS_PATH", str(INSTANCE_DIR / "redis" / "tsunagu.rdb")),
        "LINE_API_BASE": os.environ.get("LINE_API_BASE", "https://api.line.me"),
        "LINE_DATA_API_BASE": os.environ.get("LINE_DATA_API_BASE", "https://api-data.line.me"),
        "LINE_LOGIN_BASE": os.environ.get("LINE_LOGIN_BASE", "https://access.line.me"),
        "PUBLIC_BASE_URL": os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:5000"),
        "SANDBOX_ENABLED": _bool("SANDBOX_ENABLED", False),
        "INSIGHT_FIRST_SYNC_MINUTES": float(os.environ.get("INSIGHT_FIRST_SYNC_MINUTES", "60")),
        "SESSION_IDLE_MINUTES": int(os.environ.get("SESSION_IDLE_MINUTES", "30")),
        "SESSION_MAX_HOURS": int(os.environ.get("SESSION_MAX_HOURS", "12")),
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=int(os.environ.get("SESSION_MAX_HOURS", "12"))),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool("SESSION_COOKIE_SECURE", False),
        # Wrong passwords per (email, address) pair a minute, per address a minute, and per email
        # in LOGIN_EMAIL_WINDOW_MINUTES; the per-email limit pauses only addresses new to the user.
        "LOGIN_ATTEMPTS_PER_MINUTE": int(os.environ.get("LOGIN_ATTEMPTS_PER_MINUTE", "5")),
        "API_RATE_LIMIT": (int(os.environ.get("API_REQUESTS_PER_MINUTE", "120")), 60.0),
        "LOGIN_ATTEMPTS_PER_ADDRESS": int(os.environ.get("LOGIN_ATTEMPTS_PER_ADDRESS", "20")),
        "LOGIN_ATTEMPTS_PER_EMAIL": int(os.environ.get("LOGIN_ATTEMPTS_PER_EMAIL", "10")),
        "LOGIN_EMAIL_WINDOW_MINUTES": int(os.environ.get("LOGIN_EMAIL_WINDOW_MINUTES", "15")),
        # Wrong two-factor codes per user and per address in TOTP_WINDOW_MINUTES.
        "TOTP_ATTEMPTS_PER_USER": int(os.environ.get("TOTP_ATTEMPTS_PER_USER", "5")),
        "TOTP_ATTEMPTS_PER_ADDRESS": int(os.environ.get("TOTP_ATTEMPTS_PER_ADDRESS", "20")),
        "TOTP_WINDOW_MINUTES": int(os.environ.get("TOTP_WINDOW_MINUTES", "5")),
        # Largest request body anywhere; upload routes set their own (smaller or larger) limit.
        "MAX_CONTENT_LENGTH": int(os.environ.get("MAX_CONTENT_LENGTH", str(2 * 1024 * 1024))),
        "PASSWORD_MIN_LENGTH": int(os.environ.get("PASSWORD_MIN_LENGTH", "12")),
        "PASSWORD_RESET_MINUTES": int(os.environ.get("PASSWORD_RESET_MINUTES", "60")),
        # Outgoing mail: SMTP when MAIL_SERVER is set, otherwise .eml files in MAIL_OUTBOX_DIR.
        "MAIL_SERVER": os.environ.get("MAIL_SERVER", ""),
        "MAIL_PORT": int(os.environ.get("MAIL_PORT", "587")),
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME", ""),
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD", ""),
        "MAIL_USE_TLS": _bool("MAIL_USE_TLS", True),
        "MAIL_FROM": os.environ.get("MAIL_FROM", "Tsunagu <no-reply@tsunagu.example>"),
        "MAIL_OUTBOX_DIR": os.environ.get("MAIL_OUTBOX_DIR", str(INSTANCE_DIR / "outbox")),
        "WEBHOOK_MAX_BYTES": int(os.environ.get("WEBHOOK_MAX_BYTES", str(1024 * 1024))),
        "MEDIA_MAX_BYTES": int(os.environ.get("MEDIA_MAX_BYTES", str(20 * 1024 * 1024))),
        "RETENTION_ARCHIVE_DIR": os.environ.get("RETENTION_ARCHIVE_DIR", str(INSTANCE_DIR / "archive")),
        "BABEL_DEFAULT_LOCALE": "ja",
        "BABEL_DEFAULT_TIMEZONE": "Asia/Tokyo",
        "BABEL_TRANSLATION_DIRECTORIES": str(ROOT / "saas" / "translations"),
        "STRIPE_SECRET_KEY": os.environ.get("STRIPE_SECRET_KEY", ""),
        "STRIPE_WEBHOOK_SECRET": os.environ.get("STRIPE_WEBHOOK_SECRET", ""),
        "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE", "https://api.stripe.com"),
        "BILLING_GRACE_DAYS": float(os.environ.get("BILLING_GRACE_DAYS", "7")),
        "WTF_CSRF_TIME_LIMIT": None,
        # How many reverse proxies (TLS terminators, load balancers) stand in front of the app;
        # their X-Forwarded-For/-Proto are trusted only when this says so (a client could forge them).
        "TRUSTED_PROXIES": int(os.environ.get("TRUSTED_PROXIES", "0")),
    }


DEVELOPMENT_SECRET_KEY = "dev-only-secret-change-me"
_HOW_TO_MAKE_SECRET_KEY = 'python -c "import secrets; print(secrets.token_urlsafe(48))"'
_HOW_TO_MAKE_ENCRYPTION_KEY = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)


class ConfigurationError(RuntimeError):
    """The app must not start with this configuration; the message says how to fix it."""


def is_development(config: dict) -> bool:
    """Development and tests: the only places where built-in secrets are acceptable."""
    return bool(config.get("TESTING") or config.get("SANDBOX_ENABLED"))


def settle_secrets(config: dict) -> None:
    """Give development a built-in SECRET_KEY; anywhere else refuse to start without real secrets.

    A deployment needs its own SECRET_KEY (signs sessions) and an ENCRYPTION_KEY that is not
    derived from it, or one leaked SECRET_KEY would forge sessions AND decrypt every secret.
    """
    if is_development(config):
        config["SECRET_KEY"] = config.get("SECRET_KEY") or DEVELOPMENT_SECRET_KEY
        return
    problems = _secret_key_problems(config.get("SECRET_KEY") or "")
    problems += _encryption_key_problems(config.get("ENCRYPTION_KEY") or "", config.get("SECRET_KEY") or "")
    if problems:
        raise ConfigurationError(
            "Tsunagu will not start without its secrets (outside development, i.e. without SANDBOX_ENABLED):\n  - "
            + "\n  - ".join(problems)
        )


def _secret_key_problems(secret_key: str) -> list[str]:
    if not secret_key or secret_key == DEVELOPMENT_SECRET_KEY:
        return [f"SECRET_KEY is not set. Make one with: {_HOW_TO_MAKE_SECRET_KEY}"]
    if len(secret_key) < 32:
        return [f"SECRET_KEY is too short (at least 32 characters). Make one with: {_HOW_TO_MAKE_SECRET_KEY}"]
    return []


def _encryption_key_problems(encryption_key: str, secret_key: str) -> list[str]:
    from cryptography.fernet import Fernet

    from saas.crypto import derived_key

    keys = [k.strip() for k in encryption_key.split(",") if k.strip()]
    if not keys:
        return [f"ENCRYPTION_KEY is not set. Make one with: {_HOW_TO_MAKE_ENCRYPTION_KEY}"]
    for key in keys:
        try:
            Fernet(key.encode())
        except ValueError:
            return [
                f"ENCRYPTION_KEY holds a value that is not a Fernet key. Make one with: {_HOW_TO_MAKE_ENCRYPTION_KEY}"
            ]
    if secret_key and derived_key(secret_key).decode() in keys:
        return [
            "ENCRYPTION_KEY is derived from SECRET_KEY, so one leaked value would open both. "
            f"Make an independent one with: {_HOW_TO_MAKE_ENCRYPTION_KEY}"
        ]
    return []
