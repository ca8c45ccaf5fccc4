"""The segment builder's 「フォーム回答」 row: friends who answered any of the chosen forms."""

from __future__ import annotations

import sqlalchemy as sa

from saas.common import parse_ids
from saas.extensions import db
from saas.forms.models import Form, FormAnswer
from saas.friends.models import Friend


def options() -> list[Form]:
    """The clinic's forms, for the segment form (none: the row is not shown)."""
    return list(db.session.scalars(sa.select(Form).order_by(Form.id)))


def read_form(form) -> tuple[dict, list[str]]:
    """The chosen forms; an entry that is not a form id is an error (dropping it would widen the audience)."""
    from flask_babel import gettext as _

    chosen = parse_ids(form.getlist("answered_form_ids"))
    errors = [_("回答済みフォームの指定が正しくありません")] if 0 in chosen else []
    return ({"answered_form_ids": chosen} if chosen else {}), errors


def segment_filters(segment: dict) -> list:
    """SQL conditions on Friend for ``answered_form_ids`` (answered at least one of them)."""
    chosen = parse_ids(segment.get("answered_form_ids"))
    if not chosen:
        return []
    return [Friend.id.in_(sa.select(FormAnswer.friend_id).where(FormAnswer.form_id.in_(chosen)))]
