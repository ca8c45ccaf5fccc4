"""Importing visits and friend fields from a CSV (a clinic's reception system export).

Each line names a friend by ``LINEユーザーID`` or by ``診察券番号`` (the friend field with key
``card_no``), and may carry ``来院日`` (a visit, kept in the friend's visit history; 最終来院日,
the ``last_visit`` date field when the clinic has it, moves forward to it, never back) and any
friend field by its label or key. A dry run checks every line and says what it would change;
applying re-checks and writes all lines in one transaction, or nothing if any line is wrong.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.common import to_local, utcnow
from saas.extensions import db
from saas.fields import services as fields
from saas.fields.models import FriendField, FriendFieldValue
from saas.friends.models import Friend
from saas.visits import services as visits
from saas.visits.models import VisitSource

LINE_ID, CARD_NO, VISIT = "LINEユーザーID", "診察券番号", "来院日"
CARD_KEY = "card_no"
MAX_ROWS = 20_000


@dataclass
class LineResult:
    line: int
    friend_id: int | None = None
    friend_name: str = ""
    changes: dict[str, str] = field(default_factory=dict)
    error: str = ""
    rows: dict[int, list[dict]] = field(default_factory=dict, repr=False)  # field id → parsed rows
    visit: date | None = None


@dataclass
class ImportPlan:
    lines: list[LineResult]
    problem: str = ""  # about the file as a whole

    @property
    def ok(self) -> bool:
        return not self.problem and all(not line.error for line in self.lines)

    @property
    def errors(self) -> int:
        return sum(1 for line in self.lines if line.error)


def _columns(header: list[str], by_name: dict[str, FriendField]) -> tuple[dict[str, FriendField], str]:
    unknown = [h for h in header if h and h not in (LINE_ID, CARD_NO, VISIT) and h not in by_name]
    if unknown:
        return {}, _("不明な列があります: %(names)s", names="、".join(unknown))
    if LINE_ID not in header and CARD_NO not in header:
        return {}, _("「LINEユーザーID」か「診察券番号」の列が必要です")
    return {h: by_name[h] for h in header if h in by_name}, ""


def _card_friends(card_field: FriendField | None) -> dict[str, int]:
    if card_field is None:
        return {}
    rows = db.session.execute(
        sa.select(FriendFieldValue.text, FriendFieldValue.friend_id).where(FriendFieldValue.field_id == card_field.id)
    )
    return {text: friend_id for text, friend_id in rows if text}


def _find_friend(row: dict, cards: dict[str, int]) -> Friend | None:
    line_id, card = (row.get(LINE_ID) or "").strip(), (row.get(CARD_NO) or "").strip()
    if line_id:
        return db.session.scalar(sa.select(Friend).where(Friend.line_user_id == line_id))
    friend_id = cards.get(card) if card else None
    return db.session.get(Friend, friend_id) if friend_id else None


def _visit(result: LineResult, text: str) -> None:
    day = fields.parse_date(text)
    if day > to_local(utcnow()).date():
        raise fields.FieldProblem(_("来院日 %(day)s が未来の日付です", day=day.isoformat()))
    result.visit = day
    result.changes[VISIT] = day.isoformat()


def _check_line(number: int, row: dict, columns: dict[str, FriendField], cards: dict) -> LineResult:
    result = LineResult(line=number)
    friend = _find_friend(row, cards)
    if friend is None:
        result.error = _("友だちが見つかりません")
        return result
    result.friend_id, result.friend_name = friend.id, friend.display_name
    try:
        for header, column_field in columns.items():
            raw = (row.get(header) or "").strip()
            if raw and column_field.key != CARD_KEY:
                result.rows[column_field.id] = fields.parse(column_field, raw)
                result.changes[column_field.label] = raw
        if (row.get(VISIT) or "").strip():
            _visit(result, row[VISIT])
    except fields.FieldProblem as problem:
        result.error = str(problem)
    return result


def plan(text: str) -> ImportPlan:
    """Check every line of the CSV against the clinic's friends and fields; writes nothing."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    clinic_fields = fields.all_fields()
    by_name = {f.label: f for f in clinic_fields} | {f.key: f for f in clinic_fields}
    columns, problem = _columns([h.strip() for h in reader.fieldnames or []], by_name)
    if problem:
        return ImportPlan([], problem)
    cards = _card_friends(fields.get_by_key(CARD_KEY))
    lines = []
    for number, row in enumerate(reader, start=2):  # line 1 is the header
        if number > MAX_ROWS + 1:
            return ImportPlan(lines, _("%(count)s行を超えています。ファイルを分けてください", count=f"{MAX_ROWS:,}"))
        row = {(k or "").strip(): v for k, v in row.items()}
        lines.append(_check_line(number, row, columns, cards))
    return ImportPlan(lines) if lines else ImportPlan([], _("データの行がありません"))


def apply(text: str, clinic_id: int) -> ImportPlan:
    """Re-check and write every line, or nothing when any line is wrong (the caller commits)."""
    checked = plan(text)
    if not checked.ok:
        return checked
    for line in checked.lines:
        for field_id, rows in line.rows.items():
            fields.write_rows(line.friend_id, clinic_id, field_id, rows)
        if line.visit is not None:  # after the fields: 最終来院日 is then derived from the history
            visits.record(line.friend_id, clinic_id, line.visit, VisitSource.IMPORT)
    return checked
