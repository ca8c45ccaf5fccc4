"""Wiring: friends, tags, bookings and postbacks call the triggers (registered on import)."""

from __future__ import annotations

import sqlalchemy as sa

from saas.booking import hooks as booking_hooks
from saas.extensions import db
from saas.friends import hooks
from saas.friends.models import Friend
from saas.steps import triggers


@hooks.register_follow_observer
def start_on_follow(clinic, friend, event) -> None:
    triggers.on_follow(friend)


@hooks.register_unfollow_observer
def stop_on_unfollow(clinic, friend) -> None:
    triggers.on_unfollow(friend)


@hooks.register_tag_observer
def react_to_tag(friend, tag) -> None:
    triggers.on_tag_added(friend, tag)


@booking_hooks.register_booking_observer
def react_to_booking(booking, what: str) -> None:
    condition = Friend.id == booking.friend_id if booking.friend_id else Friend.line_user_id == booking.line_user_id
    friend = db.session.scalar(sa.select(Friend).where(condition))
    if friend is None:
        return
    if what == booking_hooks.MADE:
        triggers.on_booking_made(friend, booking.id)
    else:
        triggers.on_booking_completed(friend, booking.id)
    db.session.commit()


@hooks.register_postback_handler(triggers.POSTBACK_PREFIX)
def start_on_postback(clinic, friend, event):
    data = (event.get("postback") or {}).get("data") or ""
    triggers.on_postback(friend, data)
    db.session.commit()
    return None
