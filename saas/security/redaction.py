"""Secrets that travel in URLs (invitation and password-reset tokens, webhook keys) kept out of logs,
and patient-supplied URLs (LINE profile pictures) rendered only over https.

Werkzeug's request log (``flask dev``, tests) gets a logging filter; gunicorn's access log gets
``RedactingGunicornLogger`` (set in ``gunicorn.conf.py``, which the Procfile uses).
"""

from __future__ import annotations

import logging
import re

REDACTED = "[redacted]"
_SECRET_PATHS = re.compile(
    r"(/invitations/|/auth/password/reset/|/webhooks/line/|%2Finvitations%2F|%2Fauth%2Fpassword%2Freset%2F)"
    r"[^\s/?&\"#%]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """The text with every token or key that follows a secret-bearing path replaced."""
    return _SECRET_PATHS.sub(lambda match: match.group(1) + REDACTED, text)


class RedactingFilter(logging.Filter):
    """Rewrites a log record's message and arguments with ``redact``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


def install_log_redaction() -> None:
    """Filter werkzeug's request log (development and test servers) and Flask's "Exception on <path>"."""
    for name in ("werkzeug", "saas"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(RedactingFilter())


def https_url(url: str | None) -> str | None:
    """The URL when it is https:, else None (a patient's profile picture is never fetched otherwise)."""
    if isinstance(url, str) and url.lower().startswith("https://") and not any(ord(ch) < 33 for ch in url):
        return url
    return None


def gunicorn_logger_class():
    """gunicorn's Logger with the request line, path and query of every access-log line redacted."""
    from gunicorn.glogging import Logger

    class RedactingGunicornLogger(Logger):
        def atoms(self, resp, req, environ, request_time):
            atoms = super().atoms(resp, req, environ, request_time)
            for key in ("r", "U", "q", "f"):
                if isinstance(atoms.get(key), str):
                    atoms[key] = redact(atoms[key])
            return atoms

    return RedactingGunicornLogger
