"""Reading the form builder's rows (``q-<n>-label``, ``q-<n>-kind`` …) into question dicts, and
showing stored questions back in the builder (tags as 「選択肢=タグ名」 lines)."""

from __future__ import annotations

import re

from saas.common import parse_id
from saas.friends import services as friends

ROW = re.compile(r"^q-(\d+)-label$")


def _tag_lines(text: str) -> dict[str, int]:
    tags = {}
    for line in (text or "").splitlines():
        choice, sep, name = line.partition("=")
        if sep and choice.strip() and name.strip():
            tags[choice.strip()] = friends.get_or_create_tag(name.strip()).id
    return tags


def read(form) -> list[dict]:
    """The builder's rows in their order, removed ones left out (empty labels are dropped later)."""
    numbers = sorted(int(m.group(1)) for key in form if (m := ROW.match(key)))
    rows = []
    for n in numbers:
        get = lambda name, n=n: form.get(f"q-{n}-{name}", "")  # noqa: E731
        if get("remove"):
            continue
        rows.append(
            {
                "key": get("key"),
                "label": get("label"),
                "kind": get("kind"),
                "required": bool(get("required")),
                "sensitive": bool(get("sensitive")),
                "choices": get("choices"),
                "help": get("help"),
                "field_id": parse_id(get("field_id")),
                "visit": bool(get("visit")),
                "consent": get("consent"),
                "tags": _tag_lines(get("tags")) if get("label").strip() else {},
            }
        )
    return rows


def tag_text(question: dict, names: dict[int, str]) -> str:
    """A question's tags as the builder shows them: one 「選択肢=タグ名」 a line."""
    tags = question.get("tags") or {}
    return "\n".join(f"{choice}={names[tag_id]}" for choice, tag_id in tags.items() if tag_id in names)
