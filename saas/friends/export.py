"""The friends CSV (Excel-friendly UTF-8 with BOM): profile, source, consent, tags, last visit, fields.

Every cell goes through :func:`cell`, which neutralises spreadsheet formulas (a display name
such as ``=HYPERLINK(...)`` must not run in the clinic's Excel).
"""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa

from saas.booking.models import Booking, BookingStatus
from saas.common import to_local
from saas.extensions import db
from saas.fields import services as fields
from saas.friends.models import Friend, FriendTag, Tag

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
BATCH = 1000


def cell(value) -> str:
    """A value as a safe CSV cell: text starting like a formula is prefixed with an apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _when(moment) -> str:
    return to_local(moment).strftime("%Y-%m-%d %H:%M") if moment else ""


def _tags_by_friend(friend_ids: list[int]) -> dict[int, list[str]]:
    rows = db.session.execute(
        sa.select(FriendTag.friend_id, Tag.name)
        .join(Tag, Tag.id == FriendTag.tag_id)
        .where(FriendTag.friend_id.in_(friend_ids))
        .order_by(Tag.name)
    )
    found: dict[int, list[str]] = {}
    for friend_id, name in rows:
        found.setdefault(friend_id, []).append(name)
    return found


def _last_visits(friend_ids: list[int]) -> dict[int, str]:
    rows = db.session.execute(
        sa.select(Booking.friend_id, sa.func.max(Booking.starts_at))
        .where(Booking.friend_id.in_(friend_ids), Booking.status == BookingStatus.VISITED)
        .group_by(Booking.friend_id)
    )
    return {friend_id: last.date().isoformat() for friend_id, last in rows if last}


def friends_csv() -> tuple[str, int]:
    """The clinic's friends as CSV text, and how many rows it holds."""
    from saas.sources.models import InflowSource

    clinic_fields = fields.all_fields()
    sources = {s.id: s.name for s in db.session.scalars(sa.select(InflowSource))}
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out)
    header = ["ID", "LINEユーザーID", "表示名", "状態", "友だち追加日", "ブロック日", "流入経路"]
    header += ["お知らせ同意", "リマインダー同意", "タグ", "最終来院日（予約）"] + [f.label for f in clinic_fields]
    writer.writerow([cell(h) for h in header])
    friend_ids = list(db.session.scalars(sa.select(Friend.id).order_by(Friend.id)))
    for start in range(0, len(friend_ids), BATCH):
        _write_batch(writer, friend_ids[start : start + BATCH], clinic_fields, sources)
    return out.getvalue(), len(friend_ids)


def _write_batch(writer, ids: list[int], clinic_fields, sources: dict[int, str]) -> None:
    friends = db.session.scalars(sa.select(Friend).where(Friend.id.in_(ids)).order_by(Friend.id))
    tags, visits = _tags_by_friend(ids), _last_visits(ids)
    values = fields.values_for_friends(ids)
    for friend in friends:
        row = [friend.id, friend.line_user_id, friend.display_name, friend.status]
        row += [_when(friend.followed_at), _when(friend.blocked_at), sources.get(friend.inflow_source_id, "")]
        row += ["1" if friend.consent_marketing else "0", "1" if friend.consent_booking else "0"]
        row += ["、".join(tags.get(friend.id, [])), visits.get(friend.id, "")]
        row += [values.get(friend.id, {}).get(field.key, "") for field in clinic_fields]
        writer.writerow([cell(value) for value in row])
