"""Answers about a clinic's calendar: hours on a day, open at a moment, the next open day.

Everything that talks about opening hours (the 今日の診療時間 answer, the greeting, the portal)
reads them through :func:`hours_on`, so one closure entry changes all of them at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import jpholiday
import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import pgettext

from saas.common import clinic_row, zone_of
from saas.extensions import db
from saas.schedule.models import WEEKDAY_LABELS, Closure, ScheduleSettings, UrgentNoticeRequest, WeeklyBlock
from saas.tenancy.models import Clinic

SEARCH_DAYS = 60  # how far next_open_day looks ahead before giving up


@dataclass(frozen=True)
class Block:
    label: str
    start: str
    end: str

    def text(self) -> str:
        prefix = f"{self.label} " if self.label else ""
        return f"{prefix}{self.start}〜{self.end}"


@dataclass
class DayHours:
    """What a clinic's day looks like, closures and holidays applied."""

    day: date
    blocks: list[Block] = field(default_factory=list)  # blocks that are actually open
    holiday_name: str = ""
    closures: list[Closure] = field(default_factory=list)  # 休診 entries touching this day
    substitutes: list[Closure] = field(default_factory=list)  # 代診 entries on this day

    @property
    def is_open(self) -> bool:
        return bool(self.blocks)

    def summary(self) -> str:
        """The day in one Japanese sentence, as a patient would want it."""
        heading = format_day(self.day)
        lines = []
        if self.is_open:
            lines.append(f"{heading}の診療時間は {' / '.join(b.text() for b in self.blocks)} です。")
        elif self.holiday_name:
            lines.append(f"{heading}は祝日（{self.holiday_name}）のため休診です。")
        else:
            lines.append(f"{heading}は休診日です。")
        for closure in self.closures:
            part = "・".join(closure.block_labels) or "終日"
            lines.append(f"【休診】{part}休診{'：' + closure.reason if closure.reason else ''}")
        for sub in self.substitutes:
            doctor = f"{sub.substitute_doctor}医師が" if sub.substitute_doctor else "代わりの医師が"
            lines.append(f"【代診】{doctor}担当します{'（' + sub.reason + '）' if sub.reason else ''}")
        return "\n".join(lines)


def format_day(day: date) -> str:
    return f"{day.month}月{day.day}日（{WEEKDAY_LABELS[day.weekday()]}）"


def clinic_now(clinic) -> datetime:
    """The clinic's local wall-clock time (naive)."""
    return datetime.now(zone_of(clinic)).replace(tzinfo=None)


def get_settings(clinic_id: int) -> ScheduleSettings:
    """The clinic's schedule settings, created with defaults on first use."""
    return clinic_row(ScheduleSettings, clinic_id, closed_on_public_holidays=True)


def weekly_blocks(clinic_id: int) -> dict[int, list[Block]]:
    """Weekday (0 = Monday) → its opening blocks in time order."""
    rows = db.session.scalars(
        sa.select(WeeklyBlock)
        .where(WeeklyBlock.clinic_id == clinic_id)
        .order_by(WeeklyBlock.weekday, WeeklyBlock.start)
    )
    week: dict[int, list[Block]] = {day: [] for day in range(7)}
    for row in rows:
        week[row.weekday].append(Block(row.label, row.start, row.end))
    return week


def closures_between(clinic_id: int, first: date, last: date) -> list[Closure]:
    """Closures and 代診 overlapping [first, last], earliest first."""
    return list(
        db.session.scalars(
            sa.select(Closure)
            .where(Closure.clinic_id == clinic_id, Closure.starts_on <= last, Closure.ends_on >= first)
            .order_by(Closure.starts_on, Closure.id)
        )
    )


def _day_hours(day: date, week, holidays_closed: bool, closures: list[Closure]) -> DayHours:
    hours = DayHours(day)
    touching = [c for c in closures if c.starts_on <= day <= c.ends_on]
    hours.substitutes = [c for c in touching if c.is_substitute]
    hours.closures = [c for c in touching if not c.is_substitute]
    hours.holiday_name = jpholiday.is_holiday_name(day) or ""
    if hours.holiday_name and holidays_closed:
        return hours
    closed_labels = set()
    for closure in hours.closures:
        if not closure.block_labels:
            return hours
        closed_labels.update(closure.block_labels)
    hours.blocks = [b for b in week[day.weekday()] if b.label not in closed_labels]
    return hours


def hours_on(clinic, day: date) -> DayHours:
    """The clinic's opening blocks on ``day`` with holidays, 休診 and 代診 applied."""
    return hours_between(clinic, day, day)[0]


def hours_between(clinic, first: date, last: date) -> list[DayHours]:
    """:func:`hours_on` for every day from ``first`` to ``last`` in three queries."""
    week = weekly_blocks(clinic.id)
    holidays_closed = get_settings(clinic.id).closed_on_public_holidays
    closures = closures_between(clinic.id, first, last)
    days = (first + timedelta(days=n) for n in range((last - first).days + 1))
    return [_day_hours(day, week, holidays_closed, closures) for day in days]


def is_open_at(clinic, moment: datetime) -> bool:
    """Whether the clinic is seeing patients at ``moment`` (clinic local time, naive)."""
    clock = moment.strftime("%H:%M")
    return any(b.start <= clock < b.end for b in hours_on(clinic, moment.date()).blocks)


def next_open_day(clinic, after: date, *, include_today: bool = False) -> DayHours | None:
    """The first open day after ``after`` (or from it), within :data:`SEARCH_DAYS`."""
    first = after if include_today else after + timedelta(days=1)
    for hours in hours_between(clinic, first, first + timedelta(days=SEARCH_DAYS)):
        if hours.is_open:
            return hours
    return None


def upcoming_closures(clinic, today: date, days: int = 30) -> list[Closure]:
    """休診 and 代診 from today for ``days`` days: what patients should hear about."""
    return closures_between(clinic.id, today, today + timedelta(days=days))


def describe_closure(closure: Closure) -> str:
    """One line announcing a closure or 代診, for answers, greetings and notices."""
    span = format_day(closure.starts_on)
    if closure.ends_on != closure.starts_on:
        span += f"〜{format_day(closure.ends_on)}"
    part = "・".join(closure.block_labels) or ""
    if closure.is_substitute:
        doctor = f"{closure.substitute_doctor}医師による代診" if closure.substitute_doctor else "代診"
        text = f"{span}{part}は{doctor}となります。"
    else:
        text = f"{span}{part or ''}は休診です。"
    return text + (f"（{closure.reason}）" if closure.reason else "")


def weekly_text(clinic) -> str:
    """The weekly timetable as text lines (月: 午前 9:00〜12:30 / 午後 ...)."""
    week = weekly_blocks(clinic.id)
    lines = []
    for day in range(7):
        blocks = " / ".join(b.text() for b in week[day]) or "休診"
        lines.append(f"{WEEKDAY_LABELS[day]}：{blocks}")
    if get_settings(clinic.id).closed_on_public_holidays:
        lines.append("祝日：休診")
    return "\n".join(lines)


def notice_text(clinic, closure: Closure) -> str:
    """What friends receive about a closure: the clinic's name, then the closure in one line."""
    kind = "代診" if closure.is_substitute else "休診"
    return f"【{clinic.name}より{kind}のお知らせ】\n{describe_closure(closure)}"


def request_urgent_notice(clinic_id: int, closure_id: int) -> UrgentNoticeRequest:
    """Record that friends must be told about this closure; the send pipeline sends 'pending' rows.

    Safe to call twice: an existing pending request for the closure is returned as is.
    """
    closure = db.session.get(Closure, closure_id)
    if closure is None or closure.clinic_id != clinic_id:
        raise LookupError(f"closure {closure_id} not found in clinic {clinic_id}")
    existing = db.session.scalars(
        sa.select(UrgentNoticeRequest).where(
            UrgentNoticeRequest.closure_id == closure_id, UrgentNoticeRequest.status == "pending"
        )
    ).first()
    text = notice_text(db.session.get(Clinic, clinic_id), closure)
    if existing is not None:
        existing.text = text
        return existing
    request = UrgentNoticeRequest(clinic_id=clinic_id, closure_id=closure_id, text=text)
    db.session.add(request)
    db.session.flush()
    return request


def pending_urgent_notices(clinic_id: int) -> list[UrgentNoticeRequest]:
    """Requests the send pipeline has not picked up yet."""
    return list(
        db.session.scalars(
            sa.select(UrgentNoticeRequest)
            .where(UrgentNoticeRequest.clinic_id == clinic_id, UrgentNoticeRequest.status == "pending")
            .order_by(UrgentNoticeRequest.id)
        )
    )


CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
ROWS_PER_DAY = 3  # time bands a day in the weekly form (午前・午後・夜間)


def blocks_from_form(form) -> tuple[list[WeeklyBlock], list[str]]:
    """The weekly timetable as entered (``d<weekday>_<row>_start|end|label``), and what is wrong with it."""
    blocks, errors = [], []
    for day in range(7):
        for row in range(ROWS_PER_DAY):
            start, end = form.get(f"d{day}_{row}_start", "").strip(), form.get(f"d{day}_{row}_end", "").strip()
            if not start and not end:
                continue
            label = form.get(f"d{day}_{row}_label", "").strip()
            if not (CLOCK.match(start) and CLOCK.match(end)) or start >= end:
                day_label = pgettext("weekday", WEEKDAY_LABELS[day])
                errors.append(_("%(day)s曜 %(label)s の時刻が正しくありません", day=day_label, label=label))
                continue
            blocks.append(WeeklyBlock(weekday=day, label=label, start=start, end=end))
    return blocks, errors


def replace_weekly(clinic_id: int, blocks: list[WeeklyBlock], *, closed_on_public_holidays: bool) -> None:
    """The clinic's weekly timetable becomes ``blocks`` (the caller commits)."""
    db.session.execute(sa.delete(WeeklyBlock).where(WeeklyBlock.clinic_id == clinic_id))
    for block in blocks:
        block.clinic_id = clinic_id
    db.session.add_all(blocks)
    get_settings(clinic_id).closed_on_public_holidays = closed_on_public_holidays
