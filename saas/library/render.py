"""A small, safe template renderer for ``{{clinic.name}}``-style variables.

Staff write these templates, patients read the result: nothing is evaluated. A name is
looked up in a fixed dictionary; an unknown name is left as written so staff see it in
the preview instead of a silent blank.
"""

from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l

VARIABLE = re.compile(r"\{\{\s*([a-z_]+(?:\.[a-z_]+)*)\s*\}\}")

VARIABLES = {
    "clinic.name": _l("医院名"),
    "clinic.phone": _l("電話番号"),
    "clinic.address": _l("住所"),
    "clinic.access": _l("アクセス"),
    "clinic.parking": _l("駐車場"),
    "clinic.website_url": _l("ホームページ"),
    "friend.display_name": _l("友だちの表示名"),
    "today.date": _l("今日の日付"),
    "today.hours": _l("今日の診療時間"),
    "schedule.weekly": _l("週間の診療時間"),
    "schedule.next_open_day": _l("次の診療日"),
    "schedule.closures": _l("休診・代診のお知らせ"),
}


def render(template: str, values: dict[str, str]) -> str:
    """Replace each known ``{{name}}`` with its value; anything else stays as written."""

    def substitute(match: re.Match) -> str:
        name = match.group(1)
        return str(values[name]) if name in values else match.group(0)

    return VARIABLE.sub(substitute, template or "")


def render_messages(messages: list[dict], values: dict[str, str]) -> list[dict]:
    """Render the text of LINE message objects; other message types pass through unchanged."""
    rendered = []
    for message in messages:
        message = dict(message)
        if message.get("type") == "text":
            message["text"] = render(message.get("text", ""), values)
        rendered.append(message)
    return rendered
