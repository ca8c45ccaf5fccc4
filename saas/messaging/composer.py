"""The composer form: up to five message slots and quick replies, turned into LINE message objects.

Field names: ``m<slot>_type`` (text / image / sticker / buttons / flex, empty = unused) and per
type ``m<slot>_text``, ``m<slot>_image_url``, ``m<slot>_package_id``, ``m<slot>_sticker_id``,
``m<slot>_alt_text``, ``m<slot>_flex_alt_text``, ``m<slot>_title``, ``m<slot>_thumbnail_url``, ``m<slot>_flex_json``,
``m<slot>_action<n>_{label,kind,value}``; ``quick_replies`` holds one 「ラベル」 or
「ラベル|送信する文」 per line and is attached to the last message, where LINE shows it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from saas.messaging import builders
from saas.messaging.limits import BUTTONS_ACTIONS_MAX, MAX_MESSAGES
from saas.messaging.objects import Problem, validate_messages
from saas.messaging.variables import check_variables, render

SLOT_TYPES = {
    "text": _l("テキスト"),
    "image": _l("画像"),
    "sticker": _l("スタンプ"),
    "buttons": _l("ボタン"),
    "flex": _l("Flex（カード）"),
}
ACTION_KINDS = {"message": _l("テキストを送信"), "uri": _l("URLを開く")}
SLOTS = range(MAX_MESSAGES)
ACTION_SLOTS = range(BUTTONS_ACTIONS_MAX)


@dataclass
class Composition:
    """The messages built from the form, which slot each came from, and everything wrong."""

    messages: list[dict] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)  # slot of messages[i]
    problems: list[Problem] = field(default_factory=list)

    def errors_for_slot(self, slot: int) -> list[str]:
        """Problems of the message that came from this form slot (quick replies excluded)."""
        return [str(p) for p in self.problems if self._slot_of(p) == slot and ".quickReply" not in p.path]

    def quick_reply_errors(self) -> list[str]:
        return [str(p) for p in self.problems if ".quickReply" in p.path]

    def general_errors(self) -> list[str]:
        return [str(p) for p in self.problems if p.message_index is None]

    def _slot_of(self, problem: Problem) -> int | None:
        index = problem.message_index
        return self.slots[index] if index is not None and index < len(self.slots) else None


def _slot_message(form: Mapping[str, str], slot: int, problems: list[Problem]) -> dict | None:
    get = lambda name: (form.get(f"m{slot}_{name}") or "").strip()  # noqa: E731
    kind = get("type")
    if kind == "text":
        return builders.text(get("text"))
    if kind == "image":
        return builders.image(get("image_url"), get("preview_url") or None)
    if kind == "sticker":
        return builders.sticker(get("package_id"), get("sticker_id"))
    if kind == "buttons":
        actions = [_action(get, n) for n in ACTION_SLOTS if get(f"action{n}_label") or get(f"action{n}_value")]
        alt_text = get("alt_text") or get("title") or get("text")[:100]
        return builders.buttons(alt_text, get("text"), actions, title=get("title"), thumbnail_url=get("thumbnail_url"))
    if kind == "flex":
        return {
            "type": "flex",
            "altText": get("flex_alt_text"),
            "contents": _flex_contents(get("flex_json"), slot, problems),
        }
    return None


def _action(get, n: int) -> dict:
    label, value = get(f"action{n}_label"), get(f"action{n}_value")
    if get(f"action{n}_kind") == "uri":
        return builders.uri_action(label, value)
    return builders.message_action(label, value or label)


def _flex_contents(text: str, slot: int, problems: list[Problem]) -> dict | None:
    try:
        return json.loads(text) if text else None
    except json.JSONDecodeError as exc:
        problems.append(
            Problem(
                f"slot{slot}",
                _("Flex の JSON を読み取れません（%(line)s行目 %(col)s文字目）", line=exc.lineno, col=exc.colno),
            )
        )
        return {"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": []}}


def _quick_reply_actions(text: str) -> list[dict]:
    actions = []
    for line in filter(None, (raw.strip() for raw in text.splitlines())):
        label, _, body = line.partition("|")
        actions.append(builders.message_action(label.strip(), body.strip() or label.strip()))
    return actions


def compose(form: Mapping[str, str], sample_context: Mapping[str, str]) -> tuple[Composition, list[dict]]:
    """Build, check and render the form's messages; returns the composition and the preview.

    The composition holds the template (variables kept) that a send would use; the preview
    is rendered with ``sample_context``. Problems cover unknown variables and LINE's limits.
    """
    composition, json_problems = Composition(), []
    for slot in SLOTS:
        message = _slot_message(form, slot, json_problems)
        if message is not None:
            composition.messages.append(message)
            composition.slots.append(slot)
    quick = _quick_reply_actions(form.get("quick_replies") or "")
    if quick and composition.messages:
        composition.messages[-1] = builders.with_quick_reply(composition.messages[-1], quick)
    for problem in json_problems:
        index = composition.slots.index(int(problem.path.removeprefix("slot")))
        composition.problems.append(Problem(f"messages[{index}].contents", problem.message))
    preview = render(composition.messages, sample_context)
    composition.problems += check_variables(composition.messages) + validate_messages(preview)
    return composition, preview
