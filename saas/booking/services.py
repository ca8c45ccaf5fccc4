"""Native booking: slots from the schedule, taking and giving back seats, changes, no-shows.

A seat is taken with one conditional UPDATE (``booked_count < capacity``) so the database,
not a read-then-write in Python, decides who gets the last place of a slot, however many
requests race for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from saas.booking import hooks
from saas.booking.models import Booking, BookingSettings, BookingStatus, ReminderState, Slot, new_retry_key
from saas.common import clinic_row, to_utc, utcnow, zone_of
from saas.extensions import db
from saas.friends.models import Friend
from saas.schedule import services as schedule

ACTIVE = BookingStatus.CONFIRMED


class BookingRefused(Exception):
    """The booking cannot be made; ``message`` is what the patient or staff reads."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class SlotFull(BookingRefused):
    def __init__(self):
        super().__init__("申し訳ありません。この時間は満席になりました。別の時間をお選びください。")


@dataclass(frozen=True)
class SlotView:
    starts_at: datetime
    ends_at: datetime
    capacity: int
    booked: int

    @property
    def remaining(self) -> int:
        return max(self.capacity - self.booked, 0)

    @property
    def key(self) -> str:
        return self.starts_at.strftime("%Y-%m-%dT%H:%M")


def get_settings(clinic_id: int) -> BookingSettings:
    """The clinic's booking settings, created with defaults on first use."""
    return clinic_row(BookingSettings, clinic_id)


def _clock(day: date, text: str) -> datetime:
    hour, minute = (int(part) for part in text.split(":"))
    return datetime.combine(day, time(hour, minute))


def slot_times(hours: schedule.DayHours, minutes: int) -> list[tuple[datetime, datetime]]:
    """Start and end of every slot that fits inside the day's open blocks."""
    step = timedelta(minutes=minutes)
    times = []
    for block in hours.blocks:
        start, end = _clock(hours.day, block.start), _clock(hours.day, block.end)
        while start + step <= end:
            times.append((start, start + step))
            start += step
    return times


def open_slots(clinic, first: date, last: date) -> list[SlotView]:
    """Every future slot from ``first`` to ``last`` with its seats (closures and holidays applied)."""
    settings = get_settings(clinic.id)
    now = schedule.clinic_now(clinic)
    times = [t for day in schedule.hours_between(clinic, first, last) for t in slot_times(day, settings.slot_minutes)]
    rows = db.session.scalars(
        sa.select(Slot).where(
            Slot.starts_at >= datetime.combine(first, time()),
            Slot.starts_at < datetime.combine(last + timedelta(days=1), time()),
        )
    )
    existing = {row.starts_at: row for row in rows}
    views = []
    for start, end in times:
        if start <= now:
            continue
        row = existing.get(start)
        capacity = row.capacity if row else settings.capacity_per_slot
        views.append(SlotView(start, end, capacity, row.booked_count if row else 0))
    return views


def bookable_window(clinic) -> tuple[date, date]:
    today = schedule.clinic_now(clinic).date()
    return today, today + timedelta(days=get_settings(clinic.id).days_ahead)


def find_open_slot(clinic, starts_at: datetime) -> SlotView:
    """The slot starting at ``starts_at`` if the schedule offers it, else :class:`BookingRefused`."""
    first, last = bookable_window(clinic)
    if not first <= starts_at.date() <= last:
        raise BookingRefused("この日時は予約を受け付けていません。")
    for view in open_slots(clinic, starts_at.date(), starts_at.date()):
        if view.starts_at == starts_at:
            return view
    raise BookingRefused("この日時は診療時間外か休診のため予約できません。")


def _slot_id(clinic_id: int, view: SlotView) -> int:
    """The slot row for this time, inserted on first booking (committed on its own)."""
    query = sa.select(Slot.id).where(Slot.starts_at == view.starts_at)
    found = db.session.scalar(query)
    if found is not None:
        return found
    try:
        slot = Slot(clinic_id=clinic_id, starts_at=view.starts_at, ends_at=view.ends_at, capacity=view.capacity)
        db.session.add(slot)
        db.session.commit()
        return slot.id
    except IntegrityError:
        db.session.rollback()  # another request created it first
        return db.session.scalar(query)


def _take_seat(slot_id: int) -> bool:
    taken = db.session.execute(
        sa.update(Slot)
        .where(Slot.id == slot_id, Slot.booked_count < Slot.capacity)
        .values(booked_count=Slot.booked_count + 1),
        execution_options={"synchronize_session": False},
    )
    return taken.rowcount == 1


def _give_back_seat(slot_id: int) -> None:
    db.session.execute(
        sa.update(Slot).where(Slot.id == slot_id, Slot.booked_count > 0).values(booked_count=Slot.booked_count - 1),
        execution_options={"synchronize_session": False},
    )


def reminder_time(clinic, starts_at: datetime) -> datetime:
    """The day before at the clinic's reminder hour, as naive UTC."""
    settings = get_settings(clinic.id)
    local = datetime.combine(starts_at.date() - timedelta(days=1), time(settings.reminder_hour))
    return to_utc(local, zone_of(clinic))


def _active_booking_at(line_user_id: str, starts_at: datetime) -> Booking | None:
    return db.session.scalars(
        sa.select(Booking).where(
            Booking.line_user_id == line_user_id, Booking.starts_at == starts_at, Booking.status == ACTIVE
        )
    ).first()


def book(clinic, *, line_user_id: str, patient_name: str, starts_at: datetime) -> Booking:
    """Take a seat and record the booking (committed). Raises SlotFull / BookingRefused."""
    view = find_open_slot(clinic, starts_at)
    if _active_booking_at(line_user_id, starts_at) is not None:
        raise BookingRefused("この時間はすでにご予約済みです。")
    slot_id = _slot_id(clinic.id, view)
    if not _take_seat(slot_id):
        db.session.rollback()
        raise SlotFull()
    friend_id = db.session.scalar(sa.select(Friend.id).where(Friend.line_user_id == line_user_id))
    booking = Booking(
        clinic_id=clinic.id,
        slot_id=slot_id,
        starts_at=view.starts_at,
        ends_at=view.ends_at,
        friend_id=friend_id,
        line_user_id=line_user_id,
        patient_name=patient_name,
        reminder_at=reminder_time(clinic, view.starts_at),
        reminder_state=_initial_reminder_state(clinic),
    )
    db.session.add(booking)
    db.session.commit()
    hooks.notify(booking, hooks.MADE)
    return booking


def _initial_reminder_state(clinic) -> str:
    return ReminderState.PENDING if get_settings(clinic.id).reminders_enabled else ReminderState.SKIPPED


def cancel(booking: Booking, *, by: str) -> bool:
    """Cancel a confirmed booking and free its seat (committed); False if it was not active."""
    changed = db.session.execute(
        sa.update(Booking)
        .where(Booking.id == booking.id, Booking.status == ACTIVE)
        .values(status=BookingStatus.CANCELLED, cancelled_at=utcnow(), cancelled_by=by),
        execution_options={"synchronize_session": False},
    )
    if changed.rowcount != 1:
        db.session.rollback()
        return False
    _give_back_seat(booking.slot_id)
    db.session.commit()
    db.session.refresh(booking)
    return True


def change(clinic, booking: Booking, new_start: datetime) -> Booking:
    """Move a confirmed booking to another slot: the new seat is taken before the old one is freed."""
    if not booking.is_active:
        raise BookingRefused("この予約はすでにキャンセルされています。")
    view = find_open_slot(clinic, new_start)
    slot_id = _slot_id(clinic.id, view)
    if slot_id == booking.slot_id:
        return booking
    if not _take_seat(slot_id):
        db.session.rollback()
        raise SlotFull()
    _give_back_seat(booking.slot_id)
    booking.slot_id, booking.starts_at, booking.ends_at = slot_id, view.starts_at, view.ends_at
    booking.reminder_at = reminder_time(clinic, view.starts_at)
    booking.reminder_state = _initial_reminder_state(clinic)
    booking.closure_notified_at, booking.closure_notice_retry_key = None, new_retry_key()
    booking.confirmation_sent_at, booking.confirmation_retry_key = None, new_retry_key()
    booking.reminder_retry_key = new_retry_key()
    db.session.commit()
    return booking


def mark(booking: Booking, status: str) -> None:
    """Record a visit or a no-show (staff), committed."""
    if status not in {BookingStatus.VISITED, BookingStatus.NO_SHOW, BookingStatus.CONFIRMED}:
        raise ValueError(status)
    was = booking.status
    booking.status = status
    db.session.commit()
    if status == BookingStatus.VISITED and was != status:
        hooks.notify(booking, hooks.VISITED)


def bookings_between(first: datetime, last: datetime) -> list[Booking]:
    """Bookings starting in [first, last), in time order."""
    return list(
        db.session.scalars(
            sa.select(Booking)
            .where(Booking.starts_at >= first, Booking.starts_at < last)
            .order_by(Booking.starts_at, Booking.id)
        )
    )


def patient_bookings(line_user_id: str, *, upcoming_from: datetime) -> list[Booking]:
    """A patient's confirmed bookings from ``upcoming_from`` on."""
    return list(
        db.session.scalars(
            sa.select(Booking)
            .where(Booking.line_user_id == line_user_id, Booking.status == ACTIVE, Booking.starts_at >= upcoming_from)
            .order_by(Booking.starts_at)
        )
    )


def closure_conflicts(clinic) -> list[Booking]:
    """Upcoming confirmed bookings whose time the schedule no longer offers (a closure was added)
    and whose patient has not been told yet."""
    now = schedule.clinic_now(clinic)
    candidates = list(
        db.session.scalars(
            sa.select(Booking)
            .where(Booking.status == ACTIVE, Booking.starts_at >= now, Booking.closure_notified_at.is_(None))
            .order_by(Booking.starts_at)
        )
    )
    if not candidates:
        return []
    days = schedule.hours_between(clinic, candidates[0].starts_at.date(), candidates[-1].starts_at.date())
    open_by_day = {hours.day: hours for hours in days}
    return [b for b in candidates if not _still_open(open_by_day[b.starts_at.date()], b)]


def _still_open(hours: schedule.DayHours, booking: Booking) -> bool:
    clock_start, clock_end = booking.starts_at.strftime("%H:%M"), booking.ends_at.strftime("%H:%M")
    return any(block.start <= clock_start and clock_end <= block.end for block in hours.blocks)
