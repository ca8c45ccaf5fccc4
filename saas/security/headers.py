"""Security headers on every response.

Scripts may come only from this origin (``/static``, ``/vendor``): no inline script and no
``on*=`` handler attributes, so an injected ``<script>`` does not run. A page that really
needs an inline script marks it ``<script nonce="{{ csp_nonce() }}">``. Inline *styles* stay
allowed: progress bars and chart sizes are set with ``style=""`` and carry little risk.
"""

from __future__ import annotations

import secrets

from flask import Flask, g, request
from flask_login import current_user

NO_STORE_EXEMPT_ENDPOINTS = {"static", "vendor"}


def csp_nonce() -> str:
    """A per-response nonce for the rare inline ``<script>`` that cannot be a file."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def content_security_policy(nonce: str | None) -> str:
    scripts = "'self'" + (f" 'nonce-{nonce}'" if nonce else "")
    directives = {
        "default-src": "'self'",
        "script-src": scripts,
        "style-src": "'self' 'unsafe-inline'",
        "img-src": "'self' data: https:",  # LINE profile pictures and rich-menu images are on LINE's CDN
        "font-src": "'self'",
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self' https:",  # forms may redirect to Stripe Checkout or an SSO provider
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


# Pages that read QR codes with the device's camera (the reception desks) send this instead.
CAMERA_PERMISSIONS_POLICY = "camera=(self), microphone=(), geolocation=(), payment=()"


def add_security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", content_security_policy(g.get("csp_nonce")))
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if request.is_secure:
        headers.setdefault("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
    if request.endpoint not in NO_STORE_EXEMPT_ENDPOINTS and current_user and current_user.is_authenticated:
        # Pages of signed-in staff may show patients' data: never keep them in a cache.
        headers["Cache-Control"] = "no-store"
    return response


def configure_cookies(app: Flask) -> None:
    """Session cookie flags; Secure and the ``__Host-`` prefix when served over HTTPS."""
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config.setdefault("SESSION_COOKIE_SAMESITE", "Lax")
    if str(app.config.get("PUBLIC_BASE_URL", "")).startswith("https://"):
        app.config["SESSION_COOKIE_SECURE"] = True
    if app.config.get("SESSION_COOKIE_SECURE"):
        app.config["SESSION_COOKIE_NAME"] = "__Host-tsunagu_session"
        app.config["SESSION_COOKIE_DOMAIN"] = None
        app.config["SESSION_COOKIE_PATH"] = "/"
    app.config["REMEMBER_COOKIE_HTTPONLY"] = True
    app.config["REMEMBER_COOKIE_SECURE"] = bool(app.config.get("SESSION_COOKIE_SECURE"))
