"""Friend fields: defining them, reading and writing a friend's values, segment conditions.

Values are parsed by the field's kind before anything is written (a bad value changes
nothing), then the friend's rows for that field are replaced as a whole.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.common import days_before, parse_id, to_local, utcnow
from saas.extensions import db
from saas.fields.models import FieldKind, FriendField, FriendFieldValue
from saas.friends.models import Friend

KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
CHOICE_SEPARATORS = re.compile(r"[,、\n]")
MAX_CHOICES = 50


class FieldProblem(ValueError):
    """A field definition or a value that cannot be stored; the message is for people."""


def all_fields() -> list[FriendField]:
    return list(db.session.scalars(sa.select(FriendField).order_by(FriendField.position, FriendField.id)))


def get_by_key(key: str) -> FriendField | None:
    return db.session.scalar(sa.select(FriendField).where(FriendField.key == key))


def _choices(raw) -> list[str]:
    items = raw if isinstance(raw, list) else CHOICE_SEPARATORS.split(str(raw or ""))
    seen: list[str] = []
    for item in (str(i).strip()[:80] for i in items):
        if item and item not in seen:
            seen.append(item)
    return seen[:MAX_CHOICES]


def save_field(field: FriendField, *, key: str, label: str, kind: str, choices=None) -> FriendField:
    """Validate and store a field definition (the caller commits)."""
    key, label = (key or "").strip(), (label or "").strip()
    if not KEY.match(key):
        raise FieldProblem(_("キーは半角英小文字で始まり、英小文字・数字・_ の40文字以内にしてください。"))
    if not label or len(label) > 80:
        raise FieldProblem(_("項目名を入力してください（80文字以内）。"))
    if kind not in tuple(FieldKind):
        raise FieldProblem(_("種類を選んでください。"))
    clash = sa.select(FriendField.id).where(FriendField.key == key, FriendField.id != (field.id or 0))
    if db.session.scalar(clash) is not None:
        raise FieldProblem(_("同じキーの項目がすでにあります。"))
    field.key, field.label, field.kind = key, label, kind
    field.choices = _choices(choices) if kind in (FieldKind.CHOICE, FieldKind.MULTI_CHOICE) else []
    if field.has_choices and not field.choices:
        raise FieldProblem(_("選択肢を1つ以上入力してください。"))
    if field.id is None:
        field.position = len(all_fields())
    db.session.add(field)
    db.session.flush()
    return field


def parse_date(text: str) -> date:
    text = text.strip().replace("/", "-").replace(".", "-")
    try:
        return datetime.strptime(text, "%Y-%m-%d").date()
    except ValueError as exc:
        raise FieldProblem(_("日付は 2025-04-01 の形で入力してください。")) from exc


def _parse_one(field: FriendField, text: str) -> dict:
    if field.kind == FieldKind.NUMBER:
        try:
            return {"number": float(text.replace(",", ""))}
        except ValueError as exc:
            raise FieldProblem(_("「%(label)s」は数値で入力してください。", label=field.label)) from exc
    if field.kind == FieldKind.DATE:
        return {"day": parse_date(text)}
    if field.has_choices and text not in field.choices:
        raise FieldProblem(_("「%(value)s」は「%(label)s」の選択肢にありません。", value=text, label=field.label))
    return {"text": text[:500]}


def parse(field: FriendField, raw) -> list[dict]:
    """The rows a raw value becomes (empty = no value); raises FieldProblem."""
    if field.kind == FieldKind.MULTI_CHOICE:
        items = raw if isinstance(raw, list) else CHOICE_SEPARATORS.split(str(raw or ""))
        texts = list(dict.fromkeys(str(i).strip() for i in items if str(i).strip()))
    else:
        texts = [str(raw).strip()] if raw is not None and str(raw).strip() else []
    return [_parse_one(field, text) for text in texts]


def set_value(friend: Friend, field: FriendField, raw) -> None:
    """Replace the friend's value of this field (parsed first: a bad value writes nothing)."""
    rows = parse(field, raw)
    write_rows(friend.id, friend.clinic_id, field.id, rows)


def write_rows(friend_id: int, clinic_id: int, field_id: int, rows: list[dict]) -> None:
    """Replace one friend's rows of one field with already parsed rows."""
    db.session.execute(
        sa.delete(FriendFieldValue).where(
            FriendFieldValue.friend_id == friend_id, FriendFieldValue.field_id == field_id
        ),
        execution_options={"synchronize_session": False},
    )
    for row in rows:
        db.session.add(FriendFieldValue(clinic_id=clinic_id, friend_id=friend_id, field_id=field_id, **row))
    db.session.flush()


def display(field: FriendField, rows: Iterable[FriendFieldValue]) -> str:
    """A field's value as people read it (multi-choice joined with 、)."""
    parts = []
    for row in rows:
        if field.kind == FieldKind.NUMBER and row.number is not None:
            parts.append(f"{row.number:g}")
        elif field.kind == FieldKind.DATE and row.day is not None:
            parts.append(row.day.isoformat())
        elif row.text is not None:
            parts.append(row.text)
    return "、".join(parts)


def values_for_friends(friend_ids: list[int], keys: list[str] | None = None) -> dict[int, dict[str, str]]:
    """friend id → {field key: displayed value}, for the given friends (and keys), in one query."""
    fields = {f.id: f for f in all_fields() if keys is None or f.key in keys}
    if not fields or not friend_ids:
        return {}
    rows = db.session.scalars(
        sa.select(FriendFieldValue)
        .where(FriendFieldValue.friend_id.in_(friend_ids), FriendFieldValue.field_id.in_(list(fields)))
        .order_by(FriendFieldValue.id)
    )
    grouped: dict[tuple[int, int], list[FriendFieldValue]] = {}
    for row in rows:
        grouped.setdefault((row.friend_id, row.field_id), []).append(row)
    result: dict[int, dict[str, str]] = {}
    for (friend_id, field_id), items in grouped.items():
        field = fields[field_id]
        result.setdefault(friend_id, {})[field.key] = display(field, items)
    return result


def dates_of(key: str) -> dict[int, date]:
    """friend id → the date in the date field of this key (e.g. last_visit imported from a CSV)."""
    field = get_by_key(key)
    if field is None or field.kind != FieldKind.DATE:
        return {}
    rows = db.session.execute(
        sa.select(FriendFieldValue.friend_id, FriendFieldValue.day).where(
            FriendFieldValue.field_id == field.id, FriendFieldValue.day.is_not(None)
        )
    )
    return dict(rows.all())


def values_by_key(friend: Friend) -> dict[str, str]:
    """One friend's field values by key."""
    return values_for_friends([friend.id]).get(friend.id, {})


# --- segments: {"fields": [{"field_id": 3, "op": "eq", "value": "30代"}, ...]} ------------

OPERATORS = {
    FieldKind.TEXT: ("eq", "contains"),
    FieldKind.NUMBER: ("eq", "gte", "lte"),
    FieldKind.DATE: ("on", "on_or_after", "on_or_before", "within_days", "before_days"),
    FieldKind.CHOICE: ("eq",),
    FieldKind.MULTI_CHOICE: ("has",),
}


def _value_condition(field: FriendField, op: str, value: str, today: date):
    column = FriendFieldValue
    if field.kind == FieldKind.NUMBER:
        number = float(value)
        return {"gte": column.number >= number, "lte": column.number <= number}.get(op, column.number == number)
    if field.kind == FieldKind.DATE:
        if op in ("within_days", "before_days"):
            cutoff = days_before(today, value)
            return column.day >= cutoff if op == "within_days" else column.day < cutoff
        day = parse_date(value)
        return {"on_or_after": column.day >= day, "on_or_before": column.day <= day}.get(op, column.day == day)
    if op == "contains":
        return column.text.contains(value, autoescape=True)
    return column.text == value


def segment_filters(conditions: list[dict] | None, *, today: date | None = None) -> list:
    """SQL conditions on Friend for a segment's field conditions (unknown fields match nobody)."""
    filters = []
    for condition in conditions or []:
        field = db.session.get(FriendField, parse_id(condition.get("field_id") or 0) or 0)
        value = str(condition.get("value") or "").strip()
        if field is None:
            filters.append(sa.false())
            continue
        if not value:
            continue
        try:
            matching = _value_condition(
                field, str(condition.get("op") or ""), value, today or to_local(utcnow()).date()
            )
        except (ValueError, FieldProblem):
            filters.append(sa.false())
            continue
        chosen = sa.select(FriendFieldValue.friend_id).where(FriendFieldValue.field_id == field.id, matching)
        filters.append(Friend.id.in_(chosen))
    return filters
