"""Recurring reminder rules: N months after a friend's last visit (vaccination, check-up, recall)."""

from __future__ import annotations

import calendar
import logging
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from saas.booking import notify
from saas.booking.models import Booking, BookingStatus
from saas.common import to_local, utcnow, zone_of
from saas.extensions import db
from saas.fields.services import dates_of
from saas.friends import consent
from saas.friends.models import Friend, FriendTag
from saas.jobs import job
from saas.line.errors import LineError
from saas.quota.counter import QuotaExceeded
from saas.receipts.models import ReceiptSource
from saas.reminders.models import ReminderRule, RuleReminder
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import tenant_scope
from saas.visits.services import last_visit_days

log = logging.getLogger(__name__)
CATCH_UP_DAYS = 7  # a due date missed (scans stopped) is still honoured this long
STALE_CLAIM = timedelta(minutes=10)
VISITED = (BookingStatus.VISITED, BookingStatus.CONFIRMED)
LAST_VISIT_FIELD = "last_visit"  # the friend field a CSV import of visits keeps up to date


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later (clamped to the month's end)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def last_visits(before: datetime) -> dict[int, date]:
    """friend id → the day of their last visit (a booking kept, a recorded visit) before ``before``."""
    query = (
        sa.select(Booking.friend_id, sa.func.max(Booking.starts_at))
        .where(Booking.friend_id.is_not(None), Booking.status.in_(VISITED), Booking.starts_at < before)
        .group_by(Booking.friend_id)
    )
    visits = {friend_id: last.date() for friend_id, last in db.session.execute(query)}
    recorded = [*dates_of(LAST_VISIT_FIELD).items(), *last_visit_days().items()]  # 最終来院日, visit history
    for friend_id, day in recorded:
        if day < before.date() and day > visits.get(friend_id, day.min):
            visits[friend_id] = day
    return visits


def _friends_with_tag(tag_id: int) -> set[int]:
    return set(db.session.scalars(sa.select(FriendTag.friend_id).where(FriendTag.tag_id == tag_id)))


def due_reminders(clinic, now_utc: datetime) -> list[int]:
    """Create the reminders rules owe today (once per rule, friend and due date); pending ids."""
    local = to_local(now_utc, zone_of(clinic))
    rule_rows = list(db.session.scalars(sa.select(ReminderRule).where(ReminderRule.active.is_(True))))
    if rule_rows:
        visits = last_visits(local)
        for rule in rule_rows:
            if local.hour >= rule.send_hour:
                _record_due(rule, visits, local.date())
    stale = now_utc - STALE_CLAIM
    pending = sa.select(RuleReminder.id).where(
        sa.or_(
            RuleReminder.state == "pending", sa.and_(RuleReminder.state == "sending", RuleReminder.claimed_at < stale)
        )
    )
    return list(db.session.scalars(pending))


def _record_due(rule: ReminderRule, visits: dict[int, date], today: date) -> None:
    allowed = _friends_with_tag(rule.tag_id) if rule.tag_id else None
    for friend_id, visited_on in visits.items():
        due_on = add_months(visited_on, rule.months_after)
        if allowed is not None and friend_id not in allowed:
            continue
        if not today - timedelta(days=CATCH_UP_DAYS) < due_on <= today:
            continue
        try:
            with db.session.begin_nested():
                db.session.add(
                    RuleReminder(clinic_id=rule.clinic_id, rule_id=rule.id, friend_id=friend_id, due_on=due_on)
                )
        except IntegrityError:
            pass  # already recorded: sent or on its way
    db.session.commit()


def _claim(reminder_id: int, now: datetime) -> bool:
    claimed = db.session.execute(
        sa.update(RuleReminder)
        .where(
            RuleReminder.id == reminder_id,
            sa.or_(
                RuleReminder.state == "pending",
                sa.and_(RuleReminder.state == "sending", RuleReminder.claimed_at < now - STALE_CLAIM),
            ),
        )
        .values(state="sending", claimed_at=now),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return claimed.rowcount == 1


@job
def send_rule_reminder(clinic_id: int, reminder_id: int, now: datetime | None = None) -> str:
    """Push one rule reminder if this worker wins the claim (retry key stored on the row)."""
    now = now or utcnow()
    with tenant_scope(clinic_id):
        if not _claim(reminder_id, now):
            return "not-claimed"
        reminder = db.session.get(RuleReminder, reminder_id)
        rule, friend = db.session.get(ReminderRule, reminder.rule_id), db.session.get(Friend, reminder.friend_id)
        clinic = db.session.get(Clinic, clinic_id)
        if friend is None or not friend.is_following or not consent.granted(friend, consent.REMINDERS):
            reminder.state = "skipped"
        else:
            try:
                notify.push_once(
                    clinic,
                    friend.line_user_id,
                    [{"type": "text", "text": rule.message}],
                    reminder.retry_key,
                    "reminder",
                    source=ReceiptSource.REMINDER,
                    friend_id=friend.id,
                    ref_id=reminder.id,
                )
                reminder.state, reminder.sent_at = "sent", now
            except QuotaExceeded:
                reminder.state = "skipped"
            except LineError as exc:
                reminder.state = "pending" if exc.retryable else "skipped"
        db.session.commit()
        return reminder.state
