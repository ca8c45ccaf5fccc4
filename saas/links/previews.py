"""Requests that fetch a short link without a patient tapping it: not counted as clicks.

LINE shows a preview card for URLs in chat: its crawler fetches the link (user agent
``facebookexternalhit/1.1;line-poker/1.0``); other apps a link is forwarded to do the same,
and browsers may prefetch. LINE's in-app browser (``… Line/13.x``) is a patient: counted.
"""

from __future__ import annotations

import re

from flask import Request

PREVIEW_AGENTS = re.compile(
    r"facebookexternalhit|line-poker|linespider|bot\b|bot/|crawler|spider|slurp|preview|embedly|"
    r"whatsapp|discord|slack|telegram|skype|curl/|wget/|python-requests|go-http-client|headless",
    re.IGNORECASE,
)
PREFETCH_HEADERS = ("Sec-Purpose", "Purpose", "X-Purpose", "X-Moz")


def is_preview(request: Request) -> bool:
    """Whether the request is a preview, a prefetch or a HEAD: redirected, but no click."""
    if request.method != "GET":
        return True
    for header in PREFETCH_HEADERS:
        if any(word in request.headers.get(header, "").lower() for word in ("prefetch", "preview", "prerender")):
            return True
    agent = request.headers.get("User-Agent", "")
    return not agent or PREVIEW_AGENTS.search(agent) is not None
