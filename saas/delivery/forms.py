"""Reading the new-delivery form: audience, segment, schedule (Japan time) and options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.common import parse_id, parse_ids, read_days, to_utc
from saas.delivery.audience import jst_day_start
from saas.delivery.models import DeliveryKind
from saas.extensions import db
from saas.fields import segments as field_segments
from saas.forms import segments as form_segments
from saas.friends.models import Friend
from saas.visits import services as visit_segments


@dataclass
class DeliveryForm:
    kind: str = DeliveryKind.BROADCAST
    segment: dict = field(default_factory=dict)
    friend_id: int | None = None
    scheduled_at: datetime | None = None  # naive UTC
    allow_trim: bool = False
    track_clicks_per_friend: bool = True
    errors: list[str] = field(default_factory=list)


AUDIENCES = ("all", "segment", "friend")
TITLE_MAX = 200  # Delivery.title's column


def _tag_ids(form, name: str, errors: list[str]) -> list[int]:
    ids = parse_ids(form.getlist(name))
    if 0 in ids:  # dropping it would widen the audience
        errors.append(_("タグの指定が正しくありません"))
    return ids


def _followed(form, segment: dict, errors: list[str]) -> None:
    for name in ("followed_from", "followed_to"):
        text = (form.get(name) or "").strip()
        if text and jst_day_start(text) is None:
            errors.append(_("友だち追加日は日付（例：2025-04-01）で入力してください"))
        elif text:
            segment[name] = text


def read_segment(form) -> tuple[dict, list[str]]:
    """The segment described by the form's fields, and what is wrong with them."""
    errors: list[str] = []
    segment: dict = {}
    tags = _tag_ids(form, "tag_ids", errors)
    if tags:
        segment["tag_ids"], segment["tag_match"] = tags, "all" if form.get("tag_match") == "all" else "any"
    excluded = _tag_ids(form, "exclude_tag_ids", errors)
    if excluded:
        segment["exclude_tag_ids"] = excluded
    for read in (field_segments.read_form, visit_segments.read_form, form_segments.read_form):
        part, problems = read(form)  # friend fields and sources, visits, answered forms
        segment.update(part)
        errors += problems
    _followed(form, segment, errors)
    within = read_days(form.get("messaged_within_days"), _("最終メッセージ（以内）"), errors)
    silent = read_days(form.get("silent_for_days"), _("最終メッセージ（以上前）"), errors)
    if within is not None:
        segment["messaged_within_days"] = within
    if silent is not None:
        segment["silent_for_days"] = silent
    return segment, errors


def read_schedule(text: str | None, now: datetime) -> tuple[datetime | None, str | None]:
    """A ``datetime-local`` value in Japan time → naive UTC; an error if it is in the past."""
    text = (text or "").strip()
    if not text:
        return None, None
    try:
        local = datetime.fromisoformat(text)
    except ValueError:
        return None, _("配信日時の形式が正しくありません")
    when = to_utc(local)
    if when < now - timedelta(minutes=1):
        return None, _("配信日時が過去になっています")
    return when, None


def _tracks_per_friend(form: Mapping) -> bool:
    """「友だちごとにクリックを計測」: on unless the form says off (a hidden 0 precedes the checkbox)."""
    if "track_clicks" not in form:
        return True
    values = form.getlist("track_clicks") if hasattr(form, "getlist") else [form.get("track_clicks")]
    return "1" in values


def _friend(text: str | None) -> tuple[int | None, str | None]:
    """The one friend of a push: one of the clinic's (another clinic's is not found)."""
    if not (text or "").strip():
        return None, _("送信先の友だちが選ばれていません")
    friend_id = parse_id(text)
    found = friend_id and db.session.scalar(sa.select(Friend.id).where(Friend.id == friend_id))
    return (friend_id, None) if found else (None, _("送信先の友だちが見つかりません"))


def read_form(form: Mapping, now: datetime) -> DeliveryForm:
    """Everything the new-delivery form says, with Japanese error messages."""
    result = DeliveryForm(allow_trim=form.get("allow_trim") == "1", track_clicks_per_friend=_tracks_per_friend(form))
    audience = form.get("audience", "all")
    if audience not in AUDIENCES:  # never read as 友だち全員
        result.errors.append(_("配信先の指定が正しくありません"))
    elif form.get("urgent") == "1":
        result.kind = DeliveryKind.URGENT
    elif audience == "segment":
        result.kind = DeliveryKind.SEGMENT
        result.segment, result.errors = read_segment(form)
    elif audience == "friend":
        result.kind = DeliveryKind.PUSH
        result.friend_id, problem = _friend(form.get("friend_id"))
        if problem:
            result.errors.append(problem)
    if len((form.get("title") or "").strip()) > TITLE_MAX:
        result.errors.append(_("タイトルは%(n)s文字以内で入力してください", n=TITLE_MAX))
    result.scheduled_at, error = read_schedule(form.get("scheduled_at"), now)
    if error:
        result.errors.append(error)
    return result
