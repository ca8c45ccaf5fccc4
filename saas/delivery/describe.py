"""A stored segment in the words staff chose it with (タグ「…」のいずれか, 友だち追加日 …)."""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.common import parse_ids
from saas.extensions import db
from saas.friends.models import Tag


def _tag_names(ids) -> list[str]:
    wanted = parse_ids(ids)
    if not wanted:
        return []
    names = dict(db.session.execute(sa.select(Tag.id, Tag.name).where(Tag.id.in_(wanted))).all())
    return [f"「{names[i]}」" if i in names else _("（削除されたタグ）") for i in wanted]


def _japanese_date(text: str) -> str:
    try:
        day = date.fromisoformat(text)
    except (TypeError, ValueError):
        return str(text)
    return f"{day.year}年{day.month}月{day.day}日"


def _tags(segment: dict) -> list[tuple[str, str]]:
    lines = []
    names = _tag_names(segment.get("tag_ids"))
    if names:
        how = _("すべてが付いている") if segment.get("tag_match") == "all" else _("いずれかが付いている")
        lines.append((_("タグ"), f"{'・'.join(names)} {how}"))
    excluded = _tag_names(segment.get("exclude_tag_ids"))
    if excluded:
        lines.append((_("除外するタグ"), "・".join(excluded)))
    return lines


def _followed(segment: dict) -> list[tuple[str, str]]:
    start, end = segment.get("followed_from"), segment.get("followed_to")
    if not (start or end):
        return []
    text = "〜".join([_japanese_date(start) if start else "", _japanese_date(end) if end else ""])
    return [(_("友だち追加日"), text)]


def _messages(segment: dict) -> list[tuple[str, str]]:
    lines = []
    if segment.get("messaged_within_days") not in (None, ""):
        lines.append((_("最終メッセージ"), _("%(n)s日以内", n=segment["messaged_within_days"])))
    if segment.get("silent_for_days") not in (None, ""):
        lines.append((_("最終メッセージ"), _("%(n)s日以上前（またはなし）", n=segment["silent_for_days"])))
    return lines


def _visits(segment: dict) -> list[tuple[str, str]]:
    lines = []
    if segment.get("visited_within_days") not in (None, ""):
        lines.append((_("来院"), _("%(n)s日以内に来院", n=segment["visited_within_days"])))
    if segment.get("not_visited_for_days") not in (None, ""):
        lines.append((_("来院"), _("最終来院が%(n)s日以上前", n=segment["not_visited_for_days"])))
    return lines


def _forms(segment: dict) -> list[tuple[str, str]]:
    from saas.forms.models import Form

    wanted = parse_ids(segment.get("answered_form_ids"))
    if not wanted:
        return []
    names = dict(db.session.execute(sa.select(Form.id, Form.name).where(Form.id.in_(wanted))).all())
    shown = [f"「{names[i]}」" if i in names else _("（削除されたフォーム）") for i in wanted]
    return [(_("フォーム"), _("%(names)s に回答済み", names="・".join(shown)))]


def _others(segment: dict) -> list[tuple[str, str]]:
    lines = [(_("属性"), f"{key} = {value}") for key, value in (segment.get("attributes") or {}).items()]
    sources = segment.get("inflow_source_ids") or []
    if sources:
        lines.append((_("流入経路"), _("%(n)s件", n=len(sources))))
    return lines


def describe_segment(segment: dict | None) -> list[tuple[str, str]]:
    """(label, condition) pairs in Japanese for a delivery's segment; empty for everyone."""
    segment = segment or {}
    return (
        _tags(segment) + _followed(segment) + _messages(segment) + _visits(segment) + _forms(segment) + _others(segment)
    )


def title_in_words(title: str) -> str:
    """A delivery title with each variable shown as what it stands for: ［友だちの表示名］さま…"""
    from saas.messaging.variables import PLACEHOLDER, VARIABLES

    return PLACEHOLDER.sub(lambda m: f"［{VARIABLES.get(m.group(1), _('差し込み'))}］", title or "")


def clinic_values_as_sent(delivery) -> dict[str, str]:
    """The {{clinic.*}} values the delivery was (or, before it is sent, will be) rendered with."""
    if delivery.sent_clinic:
        return dict(delivery.sent_clinic)
    from saas.extensions import db
    from saas.messaging.variables import clinic_context
    from saas.tenancy.models import Clinic

    return clinic_context(db.session.get(Clinic, delivery.clinic_id))


def with_clinic_values(text: str, values: dict[str, str]) -> str:
    """``text`` with its {{clinic.*}} variables filled in; per-recipient ones stay as they are."""
    from saas.messaging.variables import PLACEHOLDER

    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), text or "")


def title_as_sent(delivery) -> str:
    """The delivery's title as sent: clinic variables filled in, per-recipient ones in words."""
    return title_in_words(with_clinic_values(delivery.title, clinic_values_as_sent(delivery)))


def messages_as_sent(delivery, sample: dict[str, str]) -> list:
    """The delivery's messages as sent: its clinic values, per-recipient variables from ``sample``."""
    from saas.messaging.variables import render

    return render(delivery.messages, sample | clinic_values_as_sent(delivery))
