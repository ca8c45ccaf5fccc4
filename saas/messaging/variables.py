"""Message templates with variables such as ``{{clinic.name}}`` and ``{{friend.display_name}}``.

Rendering is plain substitution of a fixed set of names (no expressions, no code, no
attribute access chosen by the template author). Recipients whose rendered messages are
identical are grouped so they can share one multicast; the rest are pushed one by one.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, NamedTuple

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from saas.common import JAPAN
from saas.messaging.objects import MessageValidationError, Problem, ensure_valid

PLACEHOLDER = re.compile(r"\{\{\s*([^{}]*?)\s*\}\}")
JST = JAPAN
WEEKDAYS = "月火水木金土日"

# name -> what staff see in the composer's list of variables
VARIABLES: dict[str, object] = {
    "clinic.name": _l("医院名"),
    "clinic.phone": _l("電話番号"),
    "clinic.address": _l("住所"),
    "clinic.website_url": _l("ホームページ"),
    "friend.display_name": _l("友だちの表示名"),
    "booking.starts_at": _l("予約日時（例: 7月3日(木) 10:00）"),
    "booking.date": _l("予約日（例: 7月3日(木)）"),
    "booking.time": _l("予約時刻（例: 10:00）"),
}
PER_RECIPIENT_PREFIXES = ("friend.", "booking.")
# A clinic's own friend fields: {{friend.fields.<key>}} (see saas.fields); empty when unset.
FIELD_VARIABLE = re.compile(r"^friend\.fields\.([a-z][a-z0-9_]{0,39})$")


def is_known(name: str) -> bool:
    """A fixed variable or a friend-field variable."""
    return name in VARIABLES or FIELD_VARIABLE.match(name) is not None


def _strings(value: Any, path: str):
    """Yield (path, string) for every string inside a message structure."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")


def variables_in(messages: Any) -> set[str]:
    """Every variable name a template uses."""
    return {name for _, text in _strings(messages, "messages") for name in PLACEHOLDER.findall(text)}


def check_variables(messages: Any) -> list[Problem]:
    """A problem for every field that uses a variable we do not know, listing the allowed ones."""
    allowed = "、".join([f"{{{{{name}}}}}" for name in VARIABLES] + ["{{friend.fields.キー}}"])
    problems = []
    for path, text in _strings(messages, "messages"):
        unknown = [name for name in PLACEHOLDER.findall(text) if not is_known(name)]
        if unknown:
            names = "、".join(f"{{{{{name}}}}}" for name in unknown)
            problems.append(
                Problem(
                    path,
                    _("使えない変数 %(names)s があります（使える変数: %(allowed)s）", names=names, allowed=allowed),
                )
            )
    return problems


def is_personalised(messages: Any) -> bool:
    """Whether the rendering differs per recipient (then some recipients may need a push)."""
    return any(name.startswith(PER_RECIPIENT_PREFIXES) for name in variables_in(messages))


def render(messages: Any, context: Mapping[str, str]) -> Any:
    """A copy of the template with every variable replaced by its value from ``context``."""
    if isinstance(messages, str):
        return PLACEHOLDER.sub(lambda m: context.get(m.group(1), ""), messages)
    if isinstance(messages, list):
        return [render(item, context) for item in messages]
    if isinstance(messages, dict):
        return {key: render(item, context) for key, item in messages.items()}
    return copy.copy(messages)


def format_when(starts_at: datetime) -> tuple[str, str]:
    """(date, time) in Japan time; naive datetimes are UTC, as stored in our database."""
    aware = starts_at if starts_at.tzinfo else starts_at.replace(tzinfo=UTC)
    local = aware.astimezone(JST)
    return f"{local.month}月{local.day}日({WEEKDAYS[local.weekday()]})", local.strftime("%H:%M")


def clinic_context(clinic: Any) -> dict[str, str]:
    return {
        f"clinic.{field}": str(getattr(clinic, field, "") or "")
        for field in ("name", "phone", "address", "website_url")
    }


def recipient_context(friend: Any = None, booking: Any = None) -> dict[str, str]:
    """The per-recipient variables (friend and booking); missing values render empty."""
    context = {"friend.display_name": str(getattr(friend, "display_name", "") or "")}
    starts_at = getattr(booking, "starts_at", None)
    date, time = format_when(starts_at) if starts_at else ("", "")
    context.update({"booking.date": date, "booking.time": time, "booking.starts_at": f"{date} {time}".strip()})
    return context


def sample_context(clinic: Any) -> dict[str, str]:
    """Values for the composer's preview: the real clinic, a made-up patient and booking."""
    booking_time = datetime(2025, 7, 3, 1, 0)  # 10:00 in Japan
    sample_friend = type("SampleFriend", (), {"display_name": "山田 花子"})()
    sample_booking = type("SampleBooking", (), {"starts_at": booking_time})()
    return {**clinic_context(clinic), **recipient_context(sample_friend, sample_booking)}


class RenderGroup(NamedTuple):
    """Recipients that receive exactly the same messages."""

    messages: list[dict]
    friends: list[Any]

    @property
    def needs_push(self) -> bool:
        """A group of one is sent with a push; larger groups with multicast."""
        return len(self.friends) == 1


def prepare_template(template: list[dict]) -> list[dict]:
    """Check the template's variables and its structure (rendered with sample-like values)."""
    problems = check_variables(template)
    if problems:
        raise MessageValidationError(problems)
    ensure_valid(render(template, {name: "x" for name in VARIABLES | dict.fromkeys(variables_in(template))}))
    return template


def _field_keys(used: list[str]) -> list[str]:
    return [match.group(1) for name in used if (match := FIELD_VARIABLE.match(name))]


def _field_values(friends: list[Any], keys: list[str]) -> dict[int, dict[str, str]]:
    if not keys:
        return {}
    from saas.fields.services import values_for_friends

    return values_for_friends([friend.id for friend in friends], keys)


def group_recipients_by_rendering(
    template: list[dict],
    clinic: Any,
    friends: Iterable[Any],
    *,
    booking_for: Callable[[Any], Any] | None = None,
) -> list[RenderGroup]:
    """Group recipients whose rendered messages are identical, largest group first.

    Friends are duck-typed (``.display_name``, ``.line_user_id``, ``.id``); ``booking_for``
    returns a friend's booking (``.starts_at``) when the template uses booking variables.
    Each distinct rendering is validated; raises :class:`MessageValidationError`.
    """
    prepare_template(template)
    used = sorted(name for name in variables_in(template) if name.startswith(PER_RECIPIENT_PREFIXES))
    base = clinic_context(clinic)
    friends = list(friends)
    keys = _field_keys(used)
    field_values = _field_values(friends, keys)
    buckets: dict[tuple[str, ...], list[Any]] = {}
    for friend in friends:
        booking = booking_for(friend) if booking_for and any(n.startswith("booking.") for n in used) else None
        values = recipient_context(friend, booking)
        mine = field_values.get(friend.id, {})
        values.update({f"friend.fields.{key}": mine.get(key, "") for key in keys})
        buckets.setdefault(tuple(values[name] for name in used), []).append(friend)
    groups = []
    for key, members in buckets.items():
        rendered = render(template, {**base, **dict(zip(used, key, strict=True))})
        groups.append(RenderGroup(ensure_valid(rendered), members))
    return sorted(groups, key=lambda group: -len(group.friends))
