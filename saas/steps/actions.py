"""Actions between messages: add or remove a tag, switch the rich menu, start another scenario.

Each action is data on the step (``[{"kind": "add_tag", "tag_id": 3}, ...]``) and runs for the
friends who reached the step (sent, or skipped only for want of consent). Tags added here are
ordinary tags: they may start or end other scenarios (their goals) like any tag.
"""

from __future__ import annotations

import logging
from datetime import datetime

import sqlalchemy as sa

from saas.common import parse_id
from saas.extensions import db
from saas.friends import services as friends
from saas.friends.models import Friend, FriendStatus, Tag
from saas.line import richmenu as line_richmenu
from saas.line.errors import LineError
from saas.richmenu.models import RichMenu

log = logging.getLogger(__name__)
KINDS = ("add_tag", "remove_tag", "rich_menu", "start_scenario")


def _friends(friend_ids: list[int]) -> list[Friend]:
    if not friend_ids:
        return []
    query = sa.select(Friend).where(Friend.id.in_(friend_ids), Friend.status == FriendStatus.FOLLOWING)
    return list(db.session.scalars(query))


def run(clinic, step, friend_ids: list[int], now: datetime) -> None:
    """Run the step's actions for these friends (the caller commits)."""
    todo = [a for a in step.actions or [] if isinstance(a, dict) and a.get("kind") in KINDS]
    if not todo or not friend_ids:
        return
    reached = _friends(friend_ids)
    for action in todo:
        _ACTIONS[action["kind"]](clinic, action, reached, now)
    db.session.flush()


def _id(action: dict, key: str) -> int:
    value = action.get(key)
    return parse_id(value or "") or 0


def _add_tag(clinic, action: dict, reached: list[Friend], now: datetime) -> None:
    tag = db.session.get(Tag, _id(action, "tag_id"))
    for friend in reached if tag is not None else []:
        friends.add_tag(friend, tag)


def _remove_tag(clinic, action: dict, reached: list[Friend], now: datetime) -> None:
    for friend in reached:
        friends.remove_tag(friend, _id(action, "tag_id"))


def _rich_menu(clinic, action: dict, reached: list[Friend], now: datetime) -> None:
    menu = db.session.get(RichMenu, _id(action, "rich_menu_id"))
    if menu is None or not menu.line_rich_menu_id or not reached:
        return
    try:
        line_richmenu.link_users(clinic, menu.line_rich_menu_id, [f.line_user_id for f in reached])
    except LineError as exc:  # the scenario goes on; the menu can be linked again from its page
        log.warning("step %s: rich menu %s not linked: %s", action, menu.id, exc)


def _start_scenario(clinic, action: dict, reached: list[Friend], now: datetime) -> None:
    from saas.steps import enrolments
    from saas.steps.models import StepScenario

    scenario = db.session.get(StepScenario, _id(action, "scenario_id"))
    for friend in reached if scenario is not None else []:
        enrolments.start(friend, scenario, "scenario", now=now)


_ACTIONS = {"add_tag": _add_tag, "remove_tag": _remove_tag, "rich_menu": _rich_menu, "start_scenario": _start_scenario}
