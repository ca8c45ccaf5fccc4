"""Re-syncing the friend list with LINE's followers API (verified and premium accounts).

Follow webhooks can be lost (an outage, a redeploy): friends LINE lists but we do not know are
added, and friends we hold as blocked whom LINE lists again are following. Nobody is greeted
here: a greeting only ever answers a follow event, so a late follow webhook greets once.
"""

from __future__ import annotations

import itertools
import logging

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from saas import line
from saas.common import utcnow
from saas.extensions import db
from saas.friends import services
from saas.friends.models import Friend, FriendStatus
from saas.line.errors import LineError, LineRequestRejected

log = logging.getLogger(__name__)

PAGE = 1000
PROFILES_PER_RUN = 100  # names of the rest are fetched with their first message
_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


def resync_followers(clinic) -> int:
    """Add the followers missing here (current tenant scope); returns how many were added."""
    added: list[str] = []
    try:
        ids = line.client.follower_ids(clinic, page_size=PAGE)
        for page in iter(lambda: list(itertools.islice(ids, PAGE)), []):
            added += _apply_page(clinic.id, page)
    except LineRequestRejected as exc:  # 403: the followers API is for verified and premium accounts
        log.info("friends of clinic %s not re-synced: %s", clinic.id, exc)
        return 0
    _fill_profiles(clinic, added[:PROFILES_PER_RUN])
    if added:
        log.warning("clinic %s: %s friends added from LINE's follower list", clinic.id, len(added))
    return len(added)


def _apply_page(clinic_id: int, user_ids: list[str]) -> list[str]:
    statement = sa.select(Friend.line_user_id, Friend.status).where(Friend.line_user_id.in_(user_ids))
    known = dict(db.session.execute(statement).tuples().all())
    missing = [user_id for user_id in dict.fromkeys(user_ids) if user_id not in known]
    now = utcnow()
    if missing:
        rows = [_row(clinic_id, user_id, now) for user_id in missing]
        insert = _INSERTS[db.engine.dialect.name]
        db.session.execute(insert(Friend).values(rows).on_conflict_do_nothing())
    unblocked = [user_id for user_id, status in known.items() if status == FriendStatus.BLOCKED]
    if unblocked:
        db.session.execute(
            sa.update(Friend)
            .where(Friend.line_user_id.in_(unblocked))
            .values(status=FriendStatus.FOLLOWING, followed_at=now),
            execution_options={"synchronize_session": False},
        )
    db.session.commit()
    return missing


def _row(clinic_id: int, user_id: str, now) -> dict:
    return {
        "clinic_id": clinic_id,
        "line_user_id": user_id,
        "status": FriendStatus.FOLLOWING,
        "followed_at": now,
        "display_name": "",
        "attributes": {},
    }


def _fill_profiles(clinic, user_ids: list[str]) -> None:
    for user_id in user_ids:
        friend = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == user_id))
        try:
            services.apply_profile(friend, line.client.get_profile(clinic, user_id))
        except LineError as exc:
            log.info("profile of %s not fetched: %s", user_id, exc)
    db.session.commit()
