"""Flex Message containers: the structure LINE requires and its JSON size limits.

Checks the shape (bubble / carousel, known component types, required fields, https images,
valid actions) and sizes; styling values are left to LINE's own validate endpoint.
"""

from __future__ import annotations

import json
from typing import Any

from flask_babel import gettext as _

from saas.messaging import limits as L


def json_size(value: Any) -> int:
    """Bytes of the compact UTF-8 JSON LINE receives."""
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def check_flex_container(checker, path: str, container: Any) -> None:
    """Add the problems of one Flex container (bubble or carousel) to ``checker``."""
    if not checker.object(path, container):
        return
    kind = checker.kind(path, container, ("bubble", "carousel"))
    if kind == "bubble":
        _bubble(checker, path, container)
    elif kind == "carousel":
        bubbles = checker.items(path, container, "contents", L.FLEX_CAROUSEL_BUBBLES_MAX)
        for index, bubble in enumerate(bubbles):
            where = f"{path}.contents[{index}]"
            if checker.object(where, bubble) and checker.kind(where, bubble, ("bubble",)):
                _bubble(checker, where, bubble)
        _size(checker, path, container, L.FLEX_CAROUSEL_BYTES_MAX)


def _bubble(checker, path: str, bubble: dict) -> None:
    if not any(bubble.get(block) for block in ("header", "hero", "body", "footer")):
        checker.fail(path, _("header・hero・body・footer のどれかを指定してください"))
    for block in ("header", "body", "footer"):
        if block in bubble:
            where = f"{path}.{block}"
            if checker.object(where, bubble[block]) and checker.kind(where, bubble[block], ("box",)):
                _component(checker, where, bubble[block])
    if "hero" in bubble:
        _component(checker, f"{path}.hero", bubble["hero"])
    if "action" in bubble:
        checker.action(f"{path}.action", bubble["action"], L.BUTTON_ACTION_TYPES, label=False)
    _size(checker, path, bubble, L.FLEX_BUBBLE_BYTES_MAX)


def _component(checker, path: str, component: Any) -> None:
    if not checker.object(path, component):
        return
    kind = checker.kind(path, component, L.FLEX_COMPONENT_TYPES)
    if kind == "box":
        checker.kind(path, component, ("horizontal", "vertical", "baseline"), label="layout")
        children = component.get("contents")
        if not isinstance(children, list):
            checker.fail(f"{path}.contents", _("配列（[...]）で指定してください"))
            children = []
        for index, child in enumerate(children):
            _component(checker, f"{path}.contents[{index}]", child)
    elif kind == "text":
        if not component.get("text") and not component.get("contents"):
            checker.fail(f"{path}.text", _("入力してください"))
    elif kind in ("image", "icon"):
        checker.url(path, component, "url")
    elif kind == "button":
        checker.action(f"{path}.action", component.get("action"), L.BUTTON_ACTION_TYPES)
    if kind != "button" and "action" in component:
        checker.action(f"{path}.action", component["action"], L.BUTTON_ACTION_TYPES, label=False)


def _size(checker, path: str, container: dict, max_bytes: int) -> None:
    size = json_size(container)
    if size > max_bytes:
        checker.fail(
            path,
            _(
                "Flexメッセージのデータが大きすぎます（%(max)sバイト以内、現在%(size)sバイト）",
                max=f"{max_bytes:,}",
                size=f"{size:,}",
            ),
        )
