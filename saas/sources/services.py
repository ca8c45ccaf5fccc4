"""Inflow sources: creating them, following a scan to the friend it brought, per-source figures.

How a scan becomes a friend with a source, within what LINE allows:

LINE's add-friend URL (``https://line.me/R/ti/p/@basic_id``) carries no parameter through to
the follow webhook, so a QR pointing straight at it cannot say which poster was scanned. Each
source's QR instead points at our tracked URL ``/add/<clinic>/<token>``, which records the scan
and sends the patient through **LINE Login** with ``bot_prompt=aggressive`` (the clinic's LINE
Login channel must be linked to its Messaging API channel in the LINE Developers console, and
``{PUBLIC_BASE_URL}/add/<clinic>/callback`` registered as a callback URL). LINE Login tells us
the LINE user id (the same ``sub`` the Messaging API uses when both channels belong to the same
provider) and shows the add-friend screen; ``friendship_status_changed`` comes back on the
callback. The follow webhook and the callback arrive in either order, so both sides look for
the other: the callback binds the scan to the user id (``pending``), and whichever of the two
sees the friend following with a pending scan attributes it (a conditional UPDATE decides, the
action runs once). A friend who was already following is recorded as a ``visit``. Without a
LINE Login channel the tracked URL still counts the opening and forwards to the add-friend URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import quote

import sqlalchemy as sa

from saas.booking.models import Booking
from saas.common import utcnow
from saas.extensions import db
from saas.friends import services as friends
from saas.friends.models import Friend, FriendStatus, Tag
from saas.line import richmenu as line_richmenu
from saas.line.errors import LineError
from saas.richmenu.models import RichMenu
from saas.sources.models import InflowSource, ScanOutcome, SourceScan

log = logging.getLogger(__name__)
PENDING_WINDOW = timedelta(hours=24)  # a sign-in this recent still attributes a later follow
JUST_FOLLOWED = timedelta(minutes=30)  # a follow this recent, before the callback, counts as new


class SourceProblem(ValueError):
    """What is wrong with a source's settings (shown to staff)."""


def all_sources() -> list[InflowSource]:
    return list(db.session.scalars(sa.select(InflowSource).order_by(InflowSource.id)))


def get_by_token(token: str) -> InflowSource | None:
    """The current clinic's active source of this token."""
    query = sa.select(InflowSource).where(InflowSource.token == token, InflowSource.active.is_(True))
    return db.session.scalar(query)


def save_source(
    source: InflowSource, *, name: str, tag_ids: list[int], rich_menu_id: int | None, poster_message: str
) -> InflowSource:
    """Validate and store a source's settings (the caller commits)."""
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise SourceProblem("name")
    clash = sa.select(InflowSource.id).where(InflowSource.name == name, InflowSource.id != (source.id or 0))
    if db.session.scalar(clash) is not None:
        raise SourceProblem("duplicate")
    known = set(db.session.scalars(sa.select(Tag.id).where(Tag.id.in_(tag_ids or []))))
    source.name, source.tag_ids = name, [t for t in tag_ids if t in known]
    source.rich_menu_id, source.poster_message = rich_menu_id, (poster_message or "").strip()[:200]
    db.session.add(source)
    db.session.flush()
    return source


def add_friend_url(clinic) -> str | None:
    """LINE's own add-friend URL of the clinic's account (None before the channel is connected)."""
    return f"https://line.me/R/ti/p/{quote(clinic.line_basic_id)}" if clinic.line_basic_id else None


def record_opening(source: InflowSource) -> SourceScan:
    scan = SourceScan(clinic_id=source.clinic_id, source_id=source.id, outcome=ScanOutcome.OPENED)
    db.session.add(scan)
    db.session.flush()
    return scan


def _friend_by_line_id(line_user_id: str) -> Friend | None:
    return db.session.scalar(sa.select(Friend).where(Friend.line_user_id == line_user_id))


def _new_through_source(friend: Friend | None, changed: bool, now: datetime) -> bool:
    if friend is None or not friend.is_following:
        return False
    return changed or bool(friend.followed_at and friend.followed_at >= now - JUST_FOLLOWED)


def bind_sign_in(clinic, scan: SourceScan, line_user_id: str, friendship_changed: bool) -> str:
    """LINE Login came back for this scan: attribute, record a visit, or wait for the follow."""
    now = utcnow()
    scan.line_user_id = line_user_id
    friend = _friend_by_line_id(line_user_id)
    if friend is not None and friend.is_following and not _new_through_source(friend, friendship_changed, now):
        scan.friend_id, scan.outcome, scan.resolved_at = friend.id, ScanOutcome.VISIT, now
        db.session.commit()
        return ScanOutcome.VISIT
    scan.outcome = ScanOutcome.PENDING
    db.session.commit()
    if _new_through_source(friend, friendship_changed, now):
        attribute(clinic, friend, scan.id)
    return scan.outcome


def attribute_pending(clinic, friend: Friend) -> None:
    """On a follow: the newest pending scan of this LINE user (if recent) brought the friend."""
    since = utcnow() - PENDING_WINDOW
    scan_id = db.session.scalar(
        sa.select(SourceScan.id)
        .where(
            SourceScan.line_user_id == friend.line_user_id,
            SourceScan.outcome == ScanOutcome.PENDING,
            SourceScan.scanned_at >= since,
        )
        .order_by(SourceScan.id.desc())
        .limit(1)
    )
    if scan_id is not None:
        attribute(clinic, friend, scan_id)


def attribute(clinic, friend: Friend, scan_id: int) -> bool:
    """Claim the pending scan for this friend and run its source's action; False if already done."""
    claimed = db.session.execute(
        sa.update(SourceScan)
        .where(SourceScan.id == scan_id, SourceScan.outcome == ScanOutcome.PENDING)
        .values(outcome=ScanOutcome.NEW_FRIEND, friend_id=friend.id, resolved_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    if claimed.rowcount != 1:
        return False  # the callback and the follow webhook met: the other one attributed it
    scan = db.session.get(SourceScan, scan_id)
    source = db.session.get(InflowSource, scan.source_id)
    if friend.inflow_source_id is None:
        friend.inflow_source_id = source.id  # the first source that brought the friend
    db.session.commit()
    run_action(clinic, friend, source)
    return True


def run_action(clinic, friend: Friend, source: InflowSource) -> None:
    """The source's action on a new friend: its tags, then its rich menu (when deployed)."""
    for tag in db.session.scalars(sa.select(Tag).where(Tag.id.in_(source.tag_ids or []))):
        friends.add_tag(friend, tag)
    from saas.steps import triggers  # the source's own scenarios (流入経路別のステップ配信)

    triggers.on_source(friend, source.id)
    db.session.commit()
    menu = db.session.get(RichMenu, source.rich_menu_id) if source.rich_menu_id else None
    if menu is not None and menu.line_rich_menu_id:
        try:
            line_richmenu.link_users(clinic, menu.line_rich_menu_id, [friend.line_user_id])
        except LineError as exc:  # tags are kept; the menu can be linked again by redeploying
            log.warning("source %s: rich menu not linked: %s", source.id, exc)


@dataclass(frozen=True)
class SourceFigures:
    opened: int = 0
    friends_added: int = 0
    blocked: int = 0
    visits: int = 0
    bookings: int = 0


def figures() -> dict[int, SourceFigures]:
    """Per source: openings, friends added, of them now blocked, visits of existing friends, bookings."""
    scans = db.session.execute(
        sa.select(
            SourceScan.source_id,
            sa.func.count(SourceScan.id),
            sa.func.count(sa.distinct(SourceScan.friend_id)).filter(SourceScan.outcome == ScanOutcome.NEW_FRIEND),
            sa.func.count(SourceScan.id).filter(SourceScan.outcome == ScanOutcome.VISIT),
        ).group_by(SourceScan.source_id)
    ).all()
    added = sa.select(SourceScan.source_id, SourceScan.friend_id).where(SourceScan.outcome == ScanOutcome.NEW_FRIEND)
    added = added.distinct().subquery()
    blocked = dict(
        db.session.execute(
            sa.select(added.c.source_id, sa.func.count(Friend.id))
            .join(Friend, Friend.id == added.c.friend_id)
            .where(Friend.status == FriendStatus.BLOCKED)
            .group_by(added.c.source_id)
        ).all()
    )
    bookings = dict(
        db.session.execute(
            sa.select(added.c.source_id, sa.func.count(Booking.id))
            .join(Booking, Booking.friend_id == added.c.friend_id)
            .group_by(added.c.source_id)
        ).all()
    )
    return {
        source_id: SourceFigures(opened, new, blocked.get(source_id, 0), visits, bookings.get(source_id, 0))
        for source_id, opened, new, visits in scans
    }
