"""Validation of LINE message objects against LINE's limits, with errors staff can act on.

A message to send is a list of 1..5 LINE message objects as plain JSON dicts (the wire shape
the Messaging API takes). Every problem names the object and field by its path, in Japanese:
``messages[1].template.actions[0].label: 20文字以内にしてください（現在23文字）``.
Hand-written rather than generated from the OpenAPI file: the file states almost none of the
limits, and pydantic's error locations and wording would need translating anyway.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask_babel import gettext as _

from saas.messaging import limits as L
from saas.messaging.flex import check_flex_container

_MESSAGE_PATH = re.compile(r"^messages\[(\d+)\]")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one field of one message object."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    @property
    def message_index(self) -> int | None:
        """Which of the (up to 5) message objects the problem is in; None for the list itself."""
        match = _MESSAGE_PATH.match(self.path)
        return int(match.group(1)) if match else None


class MessageValidationError(ValueError):
    """The messages break LINE's rules; ``problems`` lists every one found."""

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


def validate_messages(messages: Any) -> list[Problem]:
    """Every problem in a list of message objects (empty when LINE would accept it)."""
    checker = _Checker()
    checker.messages(messages)
    return checker.problems


def ensure_valid(messages: Any) -> list[dict]:
    """Return the messages unchanged, or raise :class:`MessageValidationError`."""
    problems = validate_messages(messages)
    if problems:
        raise MessageValidationError(problems)
    return messages


class _Checker:
    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.append(Problem(path, message))

    # -- primitives ---------------------------------------------------------------------
    def object(self, path: str, value: Any) -> bool:
        if not isinstance(value, dict):
            self.fail(path, _("オブジェクト（{...}）で指定してください"))
            return False
        return True

    def string(self, path: str, obj: dict, key: str, max_len: int | None = None, *, required: bool = True) -> None:
        value = obj.get(key)
        where = f"{path}.{key}"
        if value is None or value == "":
            if required:
                self.fail(where, _("入力してください"))
            return
        if not isinstance(value, str):
            self.fail(where, _("文字列で指定してください"))
            return
        length = L.utf16_length(value)
        if max_len is not None and length > max_len:
            self.fail(where, _("%(max)s文字以内にしてください（現在%(n)s文字）", max=f"{max_len:,}", n=f"{length:,}"))

    def url(self, path: str, obj: dict, key: str, max_len: int = L.URL_MAX, *, required: bool = True) -> None:
        before = len(self.problems)
        self.string(path, obj, key, max_len, required=required)
        value = obj.get(key)
        if len(self.problems) == before and isinstance(value, str) and value and not _is_https(value):
            self.fail(f"{path}.{key}", _("https:// で始まるURLにしてください"))

    def items(self, path: str, obj: dict, key: str, max_items: int, *, required: bool = True) -> list:
        value = obj.get(key)
        where = f"{path}.{key}"
        if value is None or value == []:
            if required:
                self.fail(where, _("1件以上指定してください"))
            return []
        if not isinstance(value, list):
            self.fail(where, _("配列（[...]）で指定してください"))
            return []
        if len(value) > max_items:
            self.fail(where, _("%(max)s件以内にしてください（現在%(n)s件）", max=max_items, n=len(value)))
        return value

    def kind(self, path: str, obj: dict, allowed: tuple[str, ...], label: str = "type") -> str | None:
        value = obj.get(label)
        if value in allowed:
            return value
        shown = _("未指定") if value is None else f"「{value}」"
        self.fail(
            f"{path}.{label}",
            _("種類%(kind)sは使えません（使えるもの: %(allowed)s）", kind=shown, allowed=", ".join(allowed)),
        )
        return None

    # -- messages -----------------------------------------------------------------------
    def messages(self, messages: Any) -> None:
        if not isinstance(messages, list) or not messages:
            self.fail("messages", _("メッセージを1件以上指定してください"))
            return
        if len(messages) > L.MAX_MESSAGES:
            self.fail(
                "messages",
                _("1回の配信は%(max)s件以内にしてください（現在%(n)s件）", max=L.MAX_MESSAGES, n=len(messages)),
            )
        for index, message in enumerate(messages):
            self.message(f"messages[{index}]", message)

    def message(self, path: str, message: Any) -> None:
        if not self.object(path, message):
            return
        kind = L.COUPON_TYPE if message.get("type") == L.COUPON_TYPE else self.kind(path, message, L.MESSAGE_TYPES)
        if kind is not None:
            getattr(self, f"_{kind}")(path, message)
        if "quickReply" in message:
            self.quick_reply(f"{path}.quickReply", message["quickReply"])
        if "sender" in message and self.object(f"{path}.sender", message["sender"]):
            self.string(f"{path}.sender", message["sender"], "name", L.SENDER_NAME_MAX, required=False)
            self.url(f"{path}.sender", message["sender"], "iconUrl", required=False)

    def _text(self, path: str, message: dict) -> None:
        self.string(path, message, "text", L.TEXT_MAX)

    def _image(self, path: str, message: dict) -> None:
        self.url(path, message, "originalContentUrl")
        self.url(path, message, "previewImageUrl")

    def _sticker(self, path: str, message: dict) -> None:
        for key in ("packageId", "stickerId"):
            self.string(path, message, key)
            value = message.get(key)
            if isinstance(value, str) and value and not re.match(L.STICKER_ID_PATTERN, value):
                self.fail(f"{path}.{key}", _("数字で指定してください"))

    def _template(self, path: str, message: dict) -> None:
        self.string(path, message, "altText", L.ALT_TEXT_MAX["template"])
        template = message.get("template")
        is_object = self.object(f"{path}.template", template)
        if is_object and self.kind(f"{path}.template", template, L.TEMPLATE_TYPES) == "buttons":
            self.buttons(f"{path}.template", template)

    def buttons(self, path: str, template: dict) -> None:
        self.string(path, template, "title", L.BUTTONS_TITLE_MAX, required=False)
        self.url(path, template, "thumbnailImageUrl", required=False)
        decorated = bool(template.get("title") or template.get("thumbnailImageUrl"))
        limit = L.BUTTONS_TEXT_MAX_WITH_IMAGE_OR_TITLE if decorated else L.BUTTONS_TEXT_MAX
        self.string(path, template, "text")
        text = template.get("text")
        if isinstance(text, str) and L.utf16_length(text) > limit:
            why = _("。画像またはタイトルがあるときの上限です") if decorated else ""
            length = L.utf16_length(text)
            self.fail(f"{path}.text", _("%(max)s文字以内にしてください（現在%(n)s文字）", max=limit, n=length) + why)
        for index, action in enumerate(self.items(path, template, "actions", L.BUTTONS_ACTIONS_MAX)):
            self.action(f"{path}.actions[{index}]", action, L.BUTTON_ACTION_TYPES)
        if "defaultAction" in template:
            self.action(f"{path}.defaultAction", template["defaultAction"], L.BUTTON_ACTION_TYPES, label=False)

    def action(self, path: str, action: Any, allowed: tuple[str, ...], *, label: bool = True) -> None:
        if not self.object(path, action):
            return
        kind = self.kind(path, action, allowed)
        if label:
            self.string(path, action, "label", L.ACTION_LABEL_MAX)
        if kind == "message":
            self.string(path, action, "text", L.ACTION_TEXT_MAX)
        elif kind == "uri":
            self.uri(path, action)
        elif kind == "postback":
            self.string(path, action, "data", L.POSTBACK_DATA_MAX)
            self.string(path, action, "displayText", L.ACTION_TEXT_MAX, required=False)

    def uri(self, path: str, action: dict) -> None:
        self.string(path, action, "uri", L.URI_ACTION_MAX)
        value = action.get("uri")
        if isinstance(value, str) and value and not re.match(r"^(https?|line|tel):", value):
            self.fail(f"{path}.uri", _("http://・https://・line://・tel: のいずれかで始めてください"))

    def quick_reply(self, path: str, quick_reply: Any) -> None:
        if not self.object(path, quick_reply):
            return
        for index, item in enumerate(self.items(path, quick_reply, "items", L.QUICK_REPLY_ITEMS_MAX)):
            where = f"{path}.items[{index}]"
            if self.object(where, item):
                self.url(where, item, "imageUrl", required=False)
                if item.get("type", "action") != "action":
                    self.fail(f"{where}.type", _("「action」を指定してください"))
                self.action(f"{where}.action", item.get("action"), L.QUICK_REPLY_ACTION_TYPES)

    def _coupon(self, path: str, message: dict) -> None:
        """LINE's coupon (saas.coupons creates it through the coupon API and sends its id)."""
        self.string(path, message, "couponId", 100)
        self.string(path, message, "deliveryTag", L.DELIVERY_TAG_MAX, required=False)

    def _flex(self, path: str, message: dict) -> None:
        self.string(path, message, "altText", L.ALT_TEXT_MAX["flex"])
        check_flex_container(self, f"{path}.contents", message.get("contents"))


def _is_https(url: str) -> bool:
    return url.startswith("https://") and len(url) > len("https://")
