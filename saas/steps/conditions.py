"""A step's conditions as SQL on friends: tags, friend fields, inflow source, booked or not,
a coupon used, a form answered.

Rules are data on the step (``{"match": "all" | "any", "rules": [...]}``). Other capabilities add
kinds with :func:`register_condition` (e.g. coupons: ``{"kind": "coupon_used"}``), each a function
``rule -> SQL condition on Friend``.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from saas.booking.models import Booking, BookingStatus
from saas.common import parse_id
from saas.extensions import db
from saas.fields.services import segment_filters as field_filters
from saas.friends.models import Friend, FriendTag

_builders: dict[str, Callable[[dict], sa.ColumnElement]] = {}


def register_condition(kind: str) -> Callable:
    """Decorator: ``builder(rule) -> SQL condition on Friend`` for rules of this kind."""

    def decorator(builder: Callable[[dict], sa.ColumnElement]) -> Callable:
        _builders[kind] = builder
        return builder

    return decorator


def known_kinds() -> list[str]:
    return sorted(_builders)


def _int(value) -> int:
    return parse_id(value or "") or 0


@register_condition("tag")
def _tag(rule: dict) -> sa.ColumnElement:
    tagged = Friend.id.in_(sa.select(FriendTag.friend_id).where(FriendTag.tag_id == _int(rule.get("tag_id"))))
    return tagged if rule.get("has", True) else sa.not_(tagged)


@register_condition("field")
def _field(rule: dict) -> sa.ColumnElement:
    found = field_filters([{"field_id": rule.get("field_id"), "op": rule.get("op", "eq"), "value": rule.get("value")}])
    return sa.and_(*found) if found else sa.false()


@register_condition("source")
def _source(rule: dict) -> sa.ColumnElement:
    return Friend.inflow_source_id == _int(rule.get("source_id"))


@register_condition("booked")
def _booked(rule: dict) -> sa.ColumnElement:
    active = (BookingStatus.CONFIRMED, BookingStatus.VISITED)
    booked = sa.exists().where(Booking.friend_id == Friend.id, Booking.status.in_(active))
    return booked if rule.get("value", True) else sa.not_(booked)


@register_condition("coupon_used")
def _coupon_used(rule: dict) -> sa.ColumnElement:
    from saas.coupons.models import CouponRedemption

    used = sa.exists().where(CouponRedemption.friend_id == Friend.id)
    if _int(rule.get("coupon_id")):
        used = used.where(CouponRedemption.coupon_id == _int(rule.get("coupon_id")))
    return used if rule.get("value", True) else sa.not_(used)


@register_condition("form_answered")
def _form_answered(rule: dict) -> sa.ColumnElement:
    from saas.forms.models import FormAnswer

    answered = sa.exists().where(FormAnswer.friend_id == Friend.id)
    if _int(rule.get("form_id")):
        answered = answered.where(FormAnswer.form_id == _int(rule.get("form_id")))
    return answered if rule.get("value", True) else sa.not_(answered)


def condition(conditions: dict | None) -> sa.ColumnElement | None:
    """The SQL condition of a step's rules; None when the step has none (everybody passes)."""
    rules = [r for r in (conditions or {}).get("rules") or [] if isinstance(r, dict)]
    parts = [_builders[r.get("kind")](r) if r.get("kind") in _builders else sa.false() for r in rules]
    if not parts:
        return None
    return sa.or_(*parts) if (conditions or {}).get("match") == "any" else sa.and_(*parts)


def passing(conditions: dict | None, friend_ids: list[int]) -> set[int]:
    """Which of these friends meet the conditions."""
    where = condition(conditions)
    if where is None:
        return set(friend_ids)
    found = set()
    for start in range(0, len(friend_ids), 5000):
        batch = friend_ids[start : start + 5000]
        found.update(db.session.scalars(sa.select(Friend.id).where(Friend.id.in_(batch), where)))
    return found
