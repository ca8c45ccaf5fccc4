"""Request-size limits: MAX_CONTENT_LENGTH for every route, and a tighter or looser one per upload route.

Werkzeug refuses a body whose Content-Length is over the limit before reading it, and stops a
chunked body as soon as it passes the limit, so an oversized request is never read whole.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, request


def body_limit(max_bytes: int):
    """Give a view its own largest accepted request body, in bytes."""

    def decorate(view: Callable) -> Callable:
        view.max_body_bytes = max_bytes
        return view

    return decorate


def apply_route_limit(endpoint: str | None, _values: dict | None) -> None:
    """The matched view's own limit replaces MAX_CONTENT_LENGTH for this request.

    A URL value preprocessor, because those run before every before_request hook: CSRF
    protection reads the form in one, and the limit must already hold then.
    """
    view = current_app.view_functions.get(endpoint or "")
    limit = getattr(view, "max_body_bytes", None)
    if limit is not None:
        request.max_content_length = limit
