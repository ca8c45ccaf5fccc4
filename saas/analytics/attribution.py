"""Conversions attributed to messages: a booking, coupon redemption, form answer or stamp counts for
the last delivery whose tracked link the friend clicked (``link_click``; the link's recipient, so a
forwarded link still counts for the friend it was sent to) and for the last delivery the friend
received (``message_receipt``), each within the clinic's window before it.

Attribution is stored once, by a job, when the conversion happens (see ``saas.analytics.marks``),
never worked out per page view. Sends that are themselves about the booking (confirmations,
reminders) carry no delivery and so never take the credit.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from saas.analytics.models import (
    DEFAULT_ATTRIBUTION_DAYS,
    MAX_ATTRIBUTION_DAYS,
    AnalyticsSettings,
    Conversion,
    ConversionKind,
)
from saas.booking.models import Booking
from saas.cards.models import CardStamp
from saas.coupons.models import CouponRedemption
from saas.extensions import db
from saas.forms.models import FormAnswer
from saas.links.models import LinkClick
from saas.receipts.models import FriendReceipt

_INSERTS = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
# kind -> (model, the column saying when it happened)
EVENTS = {
    ConversionKind.BOOKING: (Booking, "created_at"),
    ConversionKind.REDEMPTION: (CouponRedemption, "redeemed_at"),
    ConversionKind.FORM_ANSWER: (FormAnswer, "submitted_at"),
    ConversionKind.STAMP: (CardStamp, "stamped_at"),
}


class Touch(NamedTuple):
    delivery_id: int
    at: datetime


def window_days(clinic_id: int) -> int:
    """How many days after a message a conversion still counts for it (the clinic's setting)."""
    days = db.session.scalar(
        sa.select(AnalyticsSettings.attribution_days).where(AnalyticsSettings.clinic_id == clinic_id)
    )
    return days or DEFAULT_ATTRIBUTION_DAYS


def set_window_days(clinic_id: int, days: int) -> AnalyticsSettings:
    """Store the clinic's window (1 to ``MAX_ATTRIBUTION_DAYS`` days); the caller commits."""
    if not 1 <= days <= MAX_ATTRIBUTION_DAYS:
        raise ValueError(f"attribution window must be 1 to {MAX_ATTRIBUTION_DAYS} days")
    settings = db.session.scalar(sa.select(AnalyticsSettings).where(AnalyticsSettings.clinic_id == clinic_id))
    settings = settings or AnalyticsSettings(clinic_id=clinic_id)
    settings.attribution_days = days
    db.session.add(settings)
    return settings


def last_received(clinic_id: int, friend_id: int, since: datetime, until: datetime) -> Touch | None:
    """The newest delivery the friend received in [since, until] (the receipts' friend-time index)."""
    row = db.session.execute(
        sa.select(FriendReceipt.delivery_id, FriendReceipt.sent_at)
        .where(
            FriendReceipt.clinic_id == clinic_id,
            FriendReceipt.friend_id == friend_id,
            FriendReceipt.sent_at.between(since, until),
            FriendReceipt.delivery_id.is_not(None),
        )
        .order_by(FriendReceipt.sent_at.desc(), FriendReceipt.id.desc())
        .limit(1)
    ).first()
    return Touch(*row) if row else None


def last_clicked(clinic_id: int, friend_id: int, since: datetime, until: datetime) -> Touch | None:
    """The delivery whose link the friend tapped last in [since, until] (index ``ix_link_click_clinic_friend``).

    Rich menu taps carry no delivery and take no credit."""
    row = db.session.execute(
        sa.select(LinkClick.delivery_id, LinkClick.clicked_at)
        .where(
            LinkClick.clinic_id == clinic_id,
            LinkClick.friend_id == friend_id,
            LinkClick.clicked_at.between(since, until),
            LinkClick.delivery_id.is_not(None),
        )
        .order_by(LinkClick.clicked_at.desc(), LinkClick.id.desc())
        .limit(1)
    ).first()
    return Touch(*row) if row else None


def attribute(clinic_id: int, kind: str, ref_id: int) -> Conversion | None:
    """Store the conversion with its attribution (once: a second run changes nothing); needs the clinic's scope."""
    model, column = EVENTS[kind]
    event = db.session.get(model, ref_id)
    if event is None or event.friend_id is None:
        return None
    occurred = getattr(event, column)
    days = window_days(clinic_id)
    since = occurred - timedelta(days=days)
    received = last_received(clinic_id, event.friend_id, since, occurred)
    clicked = last_clicked(clinic_id, event.friend_id, since, occurred)
    values = {
        "clinic_id": clinic_id,
        "kind": kind,
        "ref_id": ref_id,
        "friend_id": event.friend_id,
        "occurred_at": occurred,
        "window_days": days,
        "clicked_delivery_id": clicked.delivery_id if clicked else None,
        "clicked_at": clicked.at if clicked else None,
        "received_delivery_id": received.delivery_id if received else None,
        "received_at": received.at if received else None,
    }
    insert = _INSERTS[db.engine.dialect.name](Conversion).values(**values)
    db.session.execute(insert.on_conflict_do_nothing(index_elements=["clinic_id", "kind", "ref_id"]))
    return db.session.scalar(
        sa.select(Conversion).where(
            Conversion.clinic_id == clinic_id, Conversion.kind == kind, Conversion.ref_id == ref_id
        )
    )


def unattributed_since(since: datetime, limit: int = 5000) -> list[tuple[int, str, int]]:
    """(clinic, kind, id) of conversions since ``since`` that have no stored attribution (a lost job)."""
    found: list[tuple[int, str, int]] = []
    for kind, (model, column) in EVENTS.items():
        stored = sa.select(Conversion.id).where(
            Conversion.clinic_id == model.clinic_id, Conversion.kind == kind, Conversion.ref_id == model.id
        )
        statement = (
            sa.select(model.clinic_id, model.id)
            .where(getattr(model, column) >= since, model.friend_id.is_not(None), ~stored.exists())
            .limit(limit)
        )
        found += [(clinic_id, kind, ref_id) for clinic_id, ref_id in db.session.execute(statement)]
    return found
