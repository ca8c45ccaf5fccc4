"""Finding the URLs a patient can tap in LINE message objects, and swapping them for short links.

Tappable are: ``uri`` actions anywhere (template buttons and actions, Flex buttons and
``action`` of boxes/images, quick replies, imagemap ``linkUri``, ``altUri.desktop``, rich menu
areas) and URLs written in the text of a ``text`` message (LINE makes those clickable). Image
and video addresses (``originalContentUrl``, imagemap ``baseUrl``, Flex image ``url``) are
fetched by LINE, not tapped, and are left alone; so are LINE's own app links (``line.me``,
``liff.line.me``), which must be opened by LINE itself, and non-web schemes (``tel:``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

# ASCII URL characters without brackets and quotes: Japanese text around a URL ends it
# (「https://example.jp/予約」 → https://example.jp/), as it does in LINE's own linkifier.
TEXT_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#@!$&*+,;=%]+")
TRAILING = ".,;:!?"
UNTRACKED_HOSTS = ("line.me", "liff.line.me", "lin.ee")
URI_KEYS = ("uri", "linkUri")


def trackable(url: str) -> bool:
    """A web address we may send through a short link (not LINE's own app links)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host:
        return False
    return not any(host == own or host.endswith("." + own) for own in UNTRACKED_HOSTS)


def _text_urls(text: str) -> Iterable[tuple[int, int]]:
    for match in TEXT_URL.finditer(text):
        url = match.group(0).rstrip(TRAILING)
        if trackable(url):
            yield match.start(), match.start() + len(url)


def _rewrite_text(text: str, swap: Callable[[str], str]) -> str:
    pieces, last = [], 0
    for start, end in _text_urls(text):
        pieces += [text[last:start], swap(text[start:end])]
        last = end
    return "".join(pieces) + text[last:]


def _walk(value: Any, swap: Callable[[str], str], top: bool) -> Any:
    if isinstance(value, list):
        return [_walk(item, swap, top) for item in value]
    if not isinstance(value, dict):
        return value
    linkified = top and value.get("type") == "text"  # LINE makes URLs in a text message tappable
    out = {
        key: _rewrite_text(item, swap)
        if linkified and key == "text" and isinstance(item, str)
        else _walk(item, swap, False)
        for key, item in value.items()
    }
    if out.get("type") == "uri":
        for key in URI_KEYS:
            if isinstance(out.get(key), str) and trackable(out[key]):
                out[key] = swap(out[key])
        desktop = (out.get("altUri") or {}).get("desktop") if isinstance(out.get("altUri"), dict) else None
        if isinstance(desktop, str) and trackable(desktop):
            out["altUri"] = {**out["altUri"], "desktop": swap(desktop)}
    return out


def rewrite(messages: list[dict], swap: Callable[[str], str]) -> list[dict]:
    """A copy of ``messages`` with every tappable URL replaced by ``swap(url)``."""
    return [_walk(message, swap, True) for message in messages]


def links_in(messages: list[dict]) -> list[str]:
    """The tappable URLs of ``messages``, each once, in the order they appear."""
    found: dict[str, None] = {}

    def note(url: str) -> str:
        found.setdefault(url, None)
        return url

    rewrite(messages, note)
    return list(found)


def rich_menu_links(request: dict) -> list[str]:
    """The URLs of a rich menu request's areas, each once."""
    return links_in([{"actions": [area.get("action") for area in request.get("areas", [])]}])


def rewrite_rich_menu(request: dict, swap: Callable[[str], str]) -> dict:
    """A copy of the rich menu request with its areas' URLs swapped."""
    areas = [{**area, "action": _walk(area.get("action"), swap, False)} for area in request.get("areas", [])]
    return {**request, "areas": areas}
