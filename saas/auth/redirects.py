"""Redirect targets taken from the request (``next``, Referer): only ever this site."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import request


def local_target(target: str | None) -> str | None:
    """The target as a same-site path, or None when it would leave this site.

    Accepts "/path?query" and absolute URLs on this host; refuses "//evil", backslashes,
    other hosts and schemes (``javascript:``) and anything with control characters.
    """
    if not target or any(ord(ch) < 32 for ch in target) or "\\" in target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        if parts.scheme not in ("http", "https") or parts.netloc != request.host:
            return None
    elif not target.startswith("/") or target.startswith("//"):
        return None
    path = parts.path or "/"
    if path.startswith("//"):
        return None
    return path + (f"?{parts.query}" if parts.query else "")
