"""Per-segment rich menus follow a friend's tags at once: a tag added or removed re-links the
friend's menu (before, only a redeploy of the menu did).

Which menu a friend sees: among the deployed menus whose segment tag the friend carries, the
one deployed last (a deploy links its tag's friends, so this is what a redeploy of every menu
would leave); else the deployed menu of the inflow source that brought the friend; else the
clinic's default (the friend's own link is removed).
"""

from __future__ import annotations

import logging
from collections import defaultdict

import sqlalchemy as sa

from saas.extensions import db
from saas.friends.hooks import register_tags_observer
from saas.friends.models import Friend, FriendStatus, FriendTag
from saas.jobs import job
from saas.line import richmenu as line_richmenu
from saas.richmenu.models import RichMenu
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import tenant_scope

log = logging.getLogger(__name__)
BATCH = 500


def _segment_menus() -> list[RichMenu]:
    query = sa.select(RichMenu).where(RichMenu.segment_tag_id.is_not(None), RichMenu.line_rich_menu_id.is_not(None))
    return list(db.session.scalars(query.order_by(RichMenu.deployed_at.desc(), RichMenu.id.desc())))


def _source_menus(friends: list[Friend]) -> dict[int, str]:
    from saas.sources.models import InflowSource

    source_ids = {f.inflow_source_id for f in friends if f.inflow_source_id}
    if not source_ids:
        return {}
    rows = db.session.execute(
        sa.select(InflowSource.id, RichMenu.line_rich_menu_id)
        .join(RichMenu, RichMenu.id == InflowSource.rich_menu_id)
        .where(InflowSource.id.in_(source_ids), RichMenu.line_rich_menu_id.is_not(None))
    )
    return dict(rows.all())


def menus_for(friends: list[Friend]) -> dict[int, str | None]:
    """friend id → the LINE rich menu id the friend should have linked (None: the default)."""
    menus = _segment_menus()
    tags: dict[int, set[int]] = defaultdict(set)
    rows = db.session.execute(
        sa.select(FriendTag.friend_id, FriendTag.tag_id).where(FriendTag.friend_id.in_([f.id for f in friends]))
    )
    for friend_id, tag_id in rows:
        tags[friend_id].add(tag_id)
    by_source = _source_menus(friends)
    chosen = {}
    for friend in friends:
        segment = next((m.line_rich_menu_id for m in menus if m.segment_tag_id in tags[friend.id]), None)
        chosen[friend.id] = segment or by_source.get(friend.inflow_source_id)
    return chosen


def relink(clinic, friend_ids: list[int]) -> dict[str | None, int]:
    """Link each following friend's menu through LINE, grouped by menu; {menu id: friends}."""
    friends = list(
        db.session.scalars(sa.select(Friend).where(Friend.id.in_(friend_ids), Friend.status == FriendStatus.FOLLOWING))
    )
    chosen = menus_for(friends)
    groups: dict[str | None, list[str]] = defaultdict(list)
    for friend in friends:
        groups[chosen[friend.id]].append(friend.line_user_id)
    for menu_id, user_ids in groups.items():
        if menu_id is None:
            line_richmenu.unlink_users(clinic, user_ids)
        else:
            line_richmenu.link_users(clinic, menu_id, user_ids)
    return {menu_id: len(user_ids) for menu_id, user_ids in groups.items()}


@job
def relink_rich_menus(clinic_id: int, friend_ids: list[int]) -> dict:
    """Re-link the rich menus of friends whose tags changed (safe to run twice)."""
    with tenant_scope(clinic_id):
        clinic = db.session.get(Clinic, clinic_id)
        if clinic is None or not clinic.line_access_token:
            return {}
        if not db.session.scalar(sa.select(sa.func.count(RichMenu.id)).where(RichMenu.segment_tag_id.is_not(None))):
            return {}  # no per-segment menus: nothing depends on tags
        linked = relink(clinic, friend_ids)
        return {str(k): v for k, v in linked.items()}


@register_tags_observer
def _enqueue_relink(clinic_id: int, friend_ids: list[int]) -> None:
    """After a commit that changed tags: one job per 500 friends on the default queue."""
    import redis
    from flask import has_app_context

    from saas.queues import DEFAULT, get_queue

    if not has_app_context():
        return
    try:
        for start in range(0, len(friend_ids), BATCH):
            get_queue(DEFAULT).enqueue(relink_rich_menus, clinic_id, friend_ids[start : start + BATCH])
    except (redis.RedisError, OSError) as exc:  # the tags are committed; a redeploy links the menus
        log.warning("clinic %s: rich menus not re-linked after a tag change: %s", clinic_id, exc)
