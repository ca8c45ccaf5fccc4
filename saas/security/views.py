"""Hooks the security headers, cookie settings, request-size limits and log redaction into the app."""

from __future__ import annotations

from flask import Blueprint

from saas.security.headers import add_security_headers, configure_cookies, csp_nonce
from saas.security.limits import apply_route_limit
from saas.security.redaction import https_url, install_log_redaction

bp = Blueprint("security", __name__)
bp.after_app_request(add_security_headers)
bp.app_url_value_preprocessor(apply_route_limit)
bp.add_app_template_filter(https_url, "https_url")
bp.add_app_template_global(csp_nonce, "csp_nonce")
bp.record_once(lambda state: configure_cookies(state.app))
bp.record_once(lambda state: install_log_redaction())
