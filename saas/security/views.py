"""Hooks the security headers and cookie settings into the app (no pages of its own)."""

from __future__ import annotations

from flask import Blueprint

from saas.security.headers import add_security_headers, configure_cookies, csp_nonce

bp = Blueprint("security", __name__)
bp.after_app_request(add_security_headers)
bp.add_app_template_global(csp_nonce, "csp_nonce")
bp.record_once(lambda state: configure_cookies(state.app))
