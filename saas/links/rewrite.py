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
from typing import Any, NamedTuple
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


class Origin(NamedTuple):
    """Which URLs the clinic wrote: ``only`` (URLs of the unrendered template, None: any) and
    ``filled`` (values filled in from variables: a URL overlapping one is never tracked, so a
    patient's display name ``https://evil.example`` cannot become a redirect on our domain)."""

    only: frozenset[str] | None = None
    filled: tuple[str, ...] = ()

    def allows(self, text: str, start: int, end: int) -> bool:
        url = text[start:end]
        if not trackable(url) or (self.only is not None and url not in self.only):
            return False
        return not any(_overlaps(text, value, start, end) for value in self.filled if value)


ANY = Origin()


def _overlaps(text: str, value: str, start: int, end: int) -> bool:
    at = text.find(value)
    while at != -1:
        if at < end and at + len(value) > start:
            return True
        at = text.find(value, at + 1)
    return False


def _text_urls(text: str, origin: Origin) -> Iterable[tuple[int, int]]:
    for match in TEXT_URL.finditer(text):
        url = match.group(0).rstrip(TRAILING)
        if origin.allows(text, match.start(), match.start() + len(url)):
            yield match.start(), match.start() + len(url)


def _rewrite_text(text: str, swap: Callable[[str], str], origin: Origin) -> str:
    pieces, last = [], 0
    for start, end in _text_urls(text, origin):
        pieces += [text[last:start], swap(text[start:end])]
        last = end
    return "".join(pieces) + text[last:]


def _walk(value: Any, swap: Callable[[str], str], top: bool, origin: Origin = ANY) -> Any:
    if isinstance(value, list):
        return [_walk(item, swap, top, origin) for item in value]
    if not isinstance(value, dict):
        return value
    linkified = top and value.get("type") == "text"  # LINE makes URLs in a text message tappable
    out = {
        key: _rewrite_text(item, swap, origin)
        if linkified and key == "text" and isinstance(item, str)
        else _walk(item, swap, False, origin)
        for key, item in value.items()
    }
    if out.get("type") == "uri":
        for key in URI_KEYS:
            if isinstance(out.get(key), str) and origin.allows(out[key], 0, len(out[key])):
                out[key] = swap(out[key])
        desktop = (out.get("altUri") or {}).get("desktop") if isinstance(out.get("altUri"), dict) else None
        if isinstance(desktop, str) and origin.allows(desktop, 0, len(desktop)):
            out["altUri"] = {**out["altUri"], "desktop": swap(desktop)}
    return out


def rewrite(messages: list[dict], swap: Callable[[str], str], origin: Origin = ANY) -> list[dict]:
    """A copy of ``messages`` with every tappable URL ``origin`` allows replaced by ``swap(url)``."""
    return [_walk(message, swap, True, origin) for message in messages]


def links_in(messages: list[dict], origin: Origin = ANY) -> list[str]:
    """The tappable URLs of ``messages`` (those ``origin`` allows), each once, in the order they appear."""
    found: dict[str, None] = {}

    def note(url: str) -> str:
        found.setdefault(url, None)
        return url

    rewrite(messages, note, origin)
    return list(found)


def rich_menu_links(request: dict) -> list[str]:
    """The URLs of a rich menu request's areas, each once."""
    return links_in([{"actions": [area.get("action") for area in request.get("areas", [])]}])


def rewrite_rich_menu(request: dict, swap: Callable[[str], str]) -> dict:
    """A copy of the rich menu request with its areas' URLs swapped."""
    areas = [{**area, "action": _walk(area.get("action"), swap, False)} for area in request.get("areas", [])]
    return {**request, "areas": areas}
