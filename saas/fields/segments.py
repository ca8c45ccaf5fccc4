"""The segment builder's field and source conditions: form rows in, segment data out.

Segment data: ``{"fields": [{"field_id": 3, "op": "eq", "value": "30代"}], "inflow_source_ids": [2]}``,
turned into SQL by :func:`saas.fields.services.segment_filters` and the delivery audience.
"""

from __future__ import annotations

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from saas.common import MAX_DAYS, parse_days, parse_id, parse_ids
from saas.extensions import db
from saas.fields import services
from saas.fields.models import FieldKind, FriendField

OP_LABELS = {
    "eq": _l("＝"),
    "contains": _l("を含む"),
    "gte": _l("以上"),
    "lte": _l("以下"),
    "on": _l("の日"),
    "on_or_after": _l("以降"),
    "on_or_before": _l("以前"),
    "within_days": _l("日以内"),
    "before_days": _l("日以上前"),
    "has": _l("を含む"),
}


def options() -> dict:
    """What the segment form offers: the clinic's fields (with operators) and sources."""
    from saas.sources.models import InflowSource

    fields = services.all_fields()
    sources = list(db.session.scalars(sa.select(InflowSource).order_by(InflowSource.id)))
    return {"fields": fields, "operators": services.OPERATORS, "op_labels": OP_LABELS, "sources": sources}


def _check_value(field: FriendField, op: str, value: str) -> None:
    if op in ("within_days", "before_days"):
        if parse_days(value) is None:
            message = _("「%(label)s」の日数は0〜%(max)sの数字で入力してください。", label=field.label, max=MAX_DAYS)
            raise services.FieldProblem(message)
    elif field.kind in (FieldKind.NUMBER, FieldKind.DATE):
        services.parse(field, value)


def read_form(form) -> tuple[dict, list[str]]:
    """Field rows (``field_id``, ``field_op``, ``field_value`` repeated) and chosen sources."""
    segment: dict = {}
    errors: list[str] = []
    conditions = []
    rows = zip(form.getlist("field_id"), form.getlist("field_op"), form.getlist("field_value"), strict=False)
    for raw_id, op, value in rows:
        value = value.strip()
        if not value:  # an empty row of the builder
            continue
        field = _field_in_scope(raw_id)
        if field is None:  # skipping it would widen the audience
            errors.append(_("条件の項目が見つかりません。削除された可能性があります。"))
            continue
        if op not in services.OPERATORS[field.kind]:
            op = services.OPERATORS[field.kind][0]
        try:
            _check_value(field, op, value)
        except services.FieldProblem as problem:
            errors.append(str(problem))
            continue
        conditions.append({"field_id": field.id, "op": op, "value": value})
    if conditions:
        segment["fields"] = conditions
    sources = parse_ids(form.getlist("inflow_source_ids"))
    if 0 in sources:
        errors.append(_("流入経路の指定が正しくありません"))
    if sources:
        segment["inflow_source_ids"] = sources
    return segment, errors


def _field_in_scope(raw_id: str) -> FriendField | None:
    field_id = parse_id(raw_id)
    if field_id is None:
        return None
    return db.session.scalar(sa.select(FriendField).where(FriendField.id == field_id))  # the clinic's, or None
