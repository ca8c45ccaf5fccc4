"""Reading the new-delivery form: audience, segment, schedule (Japan time) and options."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import gettext as _

from saas.common import to_utc
from saas.delivery.models import DeliveryKind
from saas.fields import segments as field_segments
from saas.forms import segments as form_segments
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


def _ints(values: list[str]) -> list[int]:
    return [int(v) for v in values if v.strip().isdigit()]


def _days(text: str | None, label: str, errors: list[str]) -> int | None:
    text = (text or "").strip()
    if not text:
        return None
    if not text.isdigit():
        errors.append(_("%(label)sは日数（数字）で入力してください", label=label))
        return None
    return int(text)


def read_segment(form) -> tuple[dict, list[str]]:
    """The segment described by the form's fields, and what is wrong with them."""
    errors: list[str] = []
    segment: dict = {}
    tags = _ints(form.getlist("tag_ids"))
    if tags:
        segment["tag_ids"], segment["tag_match"] = tags, "all" if form.get("tag_match") == "all" else "any"
    excluded = _ints(form.getlist("exclude_tag_ids"))
    if excluded:
        segment["exclude_tag_ids"] = excluded
    for read in (field_segments.read_form, visit_segments.read_form, form_segments.read_form):
        part, problems = read(form)  # friend fields and sources, visits, answered forms
        segment.update(part)
        errors += problems
    for name in ("followed_from", "followed_to"):
        if form.get(name):
            segment[name] = form.get(name)
    within = _days(form.get("messaged_within_days"), _("最終メッセージ（以内）"), errors)
    silent = _days(form.get("silent_for_days"), _("最終メッセージ（以上前）"), errors)
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


def read_form(form: Mapping, now: datetime) -> DeliveryForm:
    """Everything the new-delivery form says, with Japanese error messages."""
    result = DeliveryForm(allow_trim=form.get("allow_trim") == "1", track_clicks_per_friend=_tracks_per_friend(form))
    audience = form.get("audience", "all")
    if form.get("urgent") == "1":
        result.kind = DeliveryKind.URGENT
    elif audience == "segment":
        result.kind = DeliveryKind.SEGMENT
        result.segment, result.errors = read_segment(form)
    elif audience == "friend":
        result.kind = DeliveryKind.PUSH
        ids = _ints([form.get("friend_id") or ""])
        result.friend_id = ids[0] if ids else None
        if result.friend_id is None:
            result.errors.append(_("送信先の友だちが選ばれていません"))
    result.scheduled_at, error = read_schedule(form.get("scheduled_at"), now)
    if error:
        result.errors.append(error)
    return result
