"""Checks LINE applies to send requests: message counts, message object shapes and lengths.

Problems are collected as LINE's ``details`` (``{"message", "property"}``) so one answer
lists every error, like the real platform's "The request body has N error(s)".
"""

from __future__ import annotations

import re

from .api import LineError

USER_ID_RE = re.compile(r"^U[0-9a-f]{32}$")
UNIT_RE = re.compile(r"^[a-zA-Z0-9_]{1,30}$")
MESSAGE_TYPES = {
    "text", "textV2", "image", "video", "audio", "location", "sticker", "imagemap", "template", "flex", "coupon",
}  # fmt: skip
TEMPLATE_ACTIONS = {"buttons": (1, 4), "confirm": (2, 2)}
ACTION_TYPES = {
    "postback",
    "message",
    "uri",
    "datetimepicker",
    "camera",
    "cameraRoll",
    "location",
    "richmenuswitch",
    "clipboard",
}


def utf16_length(text: str) -> int:
    """Length as LINE counts it: UTF-16 code units (an emoji outside the BMP counts two)."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def _path(prop: str, key: str) -> str:
    return f"{prop}.{key}" if prop else key


class Problems:
    """Collected validation problems for one request body."""

    def __init__(self) -> None:
        self.details: list[dict] = []

    def add(self, prop: str, message: str) -> None:
        """Record one problem at ``prop`` (a JSON path like ``messages[0].text``)."""
        self.details.append({"message": message, "property": prop})

    def raise_if_any(self) -> None:
        """Answer 400 with every collected problem."""
        if self.details:
            raise LineError(400, f"The request body has {len(self.details)} error(s)", self.details)

    def string(self, obj: dict, key: str, prop: str, max_len: int, *, required: bool = True) -> None:
        """A string property of at most ``max_len`` characters."""
        value = obj.get(key)
        if value is None:
            if required:
                self.add(_path(prop, key), "must be specified")
            return
        if not isinstance(value, str):
            self.add(_path(prop, key), "must be a string")
        elif required and not value:
            self.add(_path(prop, key), "May not be empty")
        elif utf16_length(value) > max_len:
            self.add(_path(prop, key), f"Length must be between 0 and {max_len}")

    def https_url(self, obj: dict, key: str, prop: str, *, required: bool = True) -> None:
        """An https URL of at most 2000 characters."""
        self.string(obj, key, prop, 2000, required=required)
        value = obj.get(key)
        if isinstance(value, str) and value and not value.startswith("https://"):
            self.add(f"{prop}.{key}", "must be a valid HTTPS URL")


def check_messages(body: dict, problems: Problems) -> list[dict]:
    """Validate ``messages`` (1..5 message objects); returns them."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        problems.add("messages", "must be specified")
        return []
    if not 1 <= len(messages) <= 5:
        problems.add("messages", "Size must be between 1 and 5")
        return messages
    for index, message in enumerate(messages):
        check_message(message, f"messages[{index}]", problems)
    return messages


def check_message(message, prop: str, problems: Problems) -> None:
    """Validate one message object by its ``type``."""
    if not isinstance(message, dict):
        problems.add(prop, "must be an object")
        return
    kind = message.get("type")
    if kind not in MESSAGE_TYPES:
        problems.add(f"{prop}.type", "Invalid message type")
        return
    _CHECKS[kind](message, prop, problems)
    quick = message.get("quickReply")
    if quick is not None:
        _check_quick_reply(quick, f"{prop}.quickReply", problems)


def _text(message: dict, prop: str, problems: Problems) -> None:
    problems.string(message, "text", prop, 5000)


def _media(message: dict, prop: str, problems: Problems) -> None:
    problems.https_url(message, "originalContentUrl", prop)
    if message.get("type") != "audio":
        problems.https_url(message, "previewImageUrl", prop)
    elif not isinstance(message.get("duration"), int):
        problems.add(f"{prop}.duration", "must be specified")


def _location(message: dict, prop: str, problems: Problems) -> None:
    problems.string(message, "title", prop, 100)
    problems.string(message, "address", prop, 100)
    for key in ("latitude", "longitude"):
        if not isinstance(message.get(key), int | float):
            problems.add(f"{prop}.{key}", "must be specified")


def _sticker(message: dict, prop: str, problems: Problems) -> None:
    problems.string(message, "packageId", prop, 100)
    problems.string(message, "stickerId", prop, 100)


def _imagemap(message: dict, prop: str, problems: Problems) -> None:
    problems.https_url(message, "baseUrl", prop)
    problems.string(message, "altText", prop, 1500)
    if not isinstance(message.get("baseSize"), dict):
        problems.add(f"{prop}.baseSize", "must be specified")
    actions = message.get("actions")
    if not isinstance(actions, list) or not 1 <= len(actions) <= 50:
        problems.add(f"{prop}.actions", "Size must be between 1 and 50")


def _template(message: dict, prop: str, problems: Problems) -> None:
    problems.string(message, "altText", prop, 1500)
    template = message.get("template")
    if not isinstance(template, dict):
        problems.add(f"{prop}.template", "must be specified")
        return
    tprop = f"{prop}.template"
    kind = template.get("type")
    if kind in TEMPLATE_ACTIONS:
        problems.string(template, "text", tprop, 160 if kind == "buttons" else 240)
        problems.string(template, "title", tprop, 40, required=False)
        low, high = TEMPLATE_ACTIONS[kind]
        check_actions(template.get("actions"), f"{tprop}.actions", problems, low, high)
    elif kind in {"carousel", "image_carousel"}:
        columns = template.get("columns")
        if not isinstance(columns, list) or not 1 <= len(columns) <= 10:
            problems.add(f"{tprop}.columns", "Size must be between 1 and 10")
    else:
        problems.add(f"{tprop}.type", "Invalid template type")


def _flex(message: dict, prop: str, problems: Problems) -> None:
    problems.string(message, "altText", prop, 1500)
    contents = message.get("contents")
    if not isinstance(contents, dict) or contents.get("type") not in {"bubble", "carousel"}:
        problems.add(f"{prop}.contents", "must be a bubble or carousel container")
    elif contents["type"] == "carousel":
        bubbles = contents.get("contents")
        if not isinstance(bubbles, list) or not 1 <= len(bubbles) <= 12:
            problems.add(f"{prop}.contents.contents", "Size must be between 1 and 12")


def _coupon(message: dict, prop: str, problems: Problems) -> None:
    from .api import channel
    from .coupons import sendable

    problems.string(message, "couponId", prop, 100)
    problems.string(message, "deliveryTag", prop, 30, required=False)
    if (
        isinstance(message.get("couponId"), str)
        and message["couponId"]
        and not sendable(channel(), message["couponId"])
    ):
        problems.add(f"{prop}.couponId", "The coupon does not exist, is closed or has expired")


def check_actions(actions, prop: str, problems: Problems, low: int, high: int) -> None:
    """A list of ``low..high`` action objects."""
    if not isinstance(actions, list) or not low <= len(actions) <= high:
        problems.add(prop, f"Size must be between {low} and {high}")
        return
    for index, action in enumerate(actions):
        check_action(action, f"{prop}[{index}]", problems)


def check_action(action, prop: str, problems: Problems) -> None:
    """One action object (postback, message, uri, ...)."""
    if not isinstance(action, dict) or action.get("type") not in ACTION_TYPES:
        problems.add(f"{prop}.type", "Invalid action type")
        return
    problems.string(action, "label", prop, 20, required=False)
    kind = action["type"]
    if kind == "postback":
        problems.string(action, "data", prop, 300)
    elif kind == "message":
        problems.string(action, "text", prop, 300)
    elif kind == "uri":
        problems.string(action, "uri", prop, 1000)


def _check_quick_reply(quick, prop: str, problems: Problems) -> None:
    items = quick.get("items") if isinstance(quick, dict) else None
    if not isinstance(items, list) or not 1 <= len(items) <= 13:
        problems.add(f"{prop}.items", "Size must be between 1 and 13")
        return
    for index, item in enumerate(items):
        iprop = f"{prop}.items[{index}]"
        if not isinstance(item, dict) or item.get("type") != "action":
            problems.add(f"{iprop}.type", "must be action")
        else:
            check_action(item.get("action"), f"{iprop}.action", problems)


def check_units(body: dict, problems: Problems, max_items: int) -> list[str]:
    """``customAggregationUnits``: at most ``max_items`` names of ``[a-zA-Z0-9_]{1,30}``."""
    units = body.get("customAggregationUnits")
    if units is None:
        return []
    if not isinstance(units, list) or len(units) > max_items:
        problems.add("customAggregationUnits", f"Size must be between 0 and {max_items}")
        return []
    for index, unit in enumerate(units):
        if not isinstance(unit, str) or not UNIT_RE.match(unit):
            problems.add(f"customAggregationUnits[{index}]", "must match ^[a-zA-Z0-9_]{1,30}$")
    return units


_CHECKS = {
    "text": _text,
    "textV2": _text,
    "image": _media,
    "video": _media,
    "audio": _media,
    "location": _location,
    "sticker": _sticker,
    "imagemap": _imagemap,
    "template": _template,
    "flex": _flex,
    "coupon": _coupon,
}
