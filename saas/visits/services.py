"""Recording visits, a friend's history, 最終来院日 kept from it, and visit segment conditions.

The friend field with key ``last_visit`` (最終来院日), when the clinic has it, is derived: each
recorded visit moves it forward to the newest visit, never back, so templates and field
segments keep working; the visit rows are the history the friend page shows.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa

from saas.common import days_before, read_days, to_local, utcnow
from saas.extensions import db
from saas.fields import services as fields
from saas.fields.models import FieldKind, FriendFieldValue
from saas.friends.models import Friend
from saas.visits.models import Visit, VisitSource

LAST_VISIT_KEY = "last_visit"


def record(friend_id: int, clinic_id: int, day: date, source: str = VisitSource.DESK, staff=None) -> bool:
    """Record a visit (one a day: a day already recorded is left as it is); True when added."""
    exists = sa.select(Visit.id).where(Visit.friend_id == friend_id, Visit.visited_on == day)
    if db.session.scalar(exists) is not None:
        return False
    db.session.add(
        Visit(
            clinic_id=clinic_id,
            friend_id=friend_id,
            visited_on=day,
            source=source,
            staff_user_id=getattr(staff, "id", None),
        )
    )
    db.session.flush()
    sync_last_visit(friend_id, clinic_id)
    return True


def remove(visit: Visit) -> None:
    """Delete a visit recorded by mistake; 最終来院日 falls back to the newest remaining one."""
    friend_id, clinic_id = visit.friend_id, visit.clinic_id
    db.session.delete(visit)
    db.session.flush()
    sync_last_visit(friend_id, clinic_id, allow_back=True)


def newest(friend_id: int) -> date | None:
    return db.session.scalar(sa.select(sa.func.max(Visit.visited_on)).where(Visit.friend_id == friend_id))


def sync_last_visit(friend_id: int, clinic_id: int, *, allow_back: bool = False) -> None:
    """Set the ``last_visit`` date field to the newest visit (forward only unless ``allow_back``)."""
    field = fields.get_by_key(LAST_VISIT_KEY)
    if field is None or field.kind != FieldKind.DATE:
        return
    day = newest(friend_id)
    current = db.session.scalar(
        sa.select(FriendFieldValue.day).where(
            FriendFieldValue.friend_id == friend_id, FriendFieldValue.field_id == field.id
        )
    )
    if day is None and not allow_back:
        return
    if allow_back or current is None or (day and day > current):
        fields.write_rows(friend_id, clinic_id, field.id, [{"day": day}] if day else [])


def history(friend: Friend, limit: int = 50) -> list[Visit]:
    """The friend's visits, newest first."""
    query = sa.select(Visit).where(Visit.friend_id == friend.id).order_by(Visit.visited_on.desc()).limit(limit)
    return list(db.session.scalars(query))


def last_visit_days() -> dict[int, date]:
    """friend id → the day of their newest recorded visit (recall reminders)."""
    rows = db.session.execute(sa.select(Visit.friend_id, sa.func.max(Visit.visited_on)).group_by(Visit.friend_id))
    return dict(rows.all())


# --- segments: {"visited_within_days": 30} / {"not_visited_for_days": 180} -----------------------


def _today() -> date:
    return to_local(utcnow()).date()


def segment_filters(segment: dict, *, today: date | None = None) -> list:
    """SQL conditions on Friend: visited in the last N days / last visit N days ago or more."""
    today = today or _today()
    filters = []
    within = segment.get("visited_within_days")
    if within not in (None, ""):
        since = days_before(today, within)
        filters.append(Friend.id.in_(sa.select(Visit.friend_id).where(Visit.visited_on >= since)))
    absent = segment.get("not_visited_for_days")
    if absent not in (None, ""):
        cutoff = days_before(today, absent)
        lapsed = sa.select(Visit.friend_id).group_by(Visit.friend_id).having(sa.func.max(Visit.visited_on) < cutoff)
        filters.append(Friend.id.in_(lapsed))
    return filters


def read_form(form) -> tuple[dict, list[str]]:
    """The segment builder's 「来院」 row: ``visited_within_days`` / ``not_visited_for_days``."""
    from flask_babel import gettext as _

    segment, errors = {}, []
    for name, label in (("visited_within_days", _("来院（以内）")), ("not_visited_for_days", _("来院（以上前）"))):
        days = read_days(form.get(name), label, errors)
        if days is not None:
            segment[name] = days
    return segment, errors
