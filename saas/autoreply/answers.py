"""Turning a matched rule into LINE messages: computed answers and template variables."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from saas.autoreply.models import Computed
from saas.schedule import services as schedule


class TemplateValues:
    """Variables for templates, computed only when a template asks for them."""

    def __init__(self, clinic, friend=None, now: datetime | None = None):
        self.clinic, self.friend = clinic, friend
        self.now = now or schedule.clinic_now(clinic)
        self._makers: dict[str, Callable[[], str]] = {
            "clinic.name": lambda: clinic.name,
            "clinic.phone": lambda: clinic.phone,
            "clinic.address": lambda: clinic.address,
            "clinic.access": lambda: clinic.access,
            "clinic.parking": lambda: clinic.parking,
            "clinic.website_url": lambda: clinic.website_url,
            "friend.display_name": lambda: getattr(friend, "display_name", "") or "",
            "today.date": lambda: schedule.format_day(self.now.date()),
            "today.hours": lambda: today_hours(clinic, self.now),
            "schedule.weekly": lambda: schedule.weekly_text(clinic),
            "schedule.next_open_day": lambda: next_open_day(clinic, self.now),
            "schedule.closures": lambda: closures_text(clinic, self.now),
        }

    def __contains__(self, name: str) -> bool:
        return name in self._makers

    def __getitem__(self, name: str) -> str:
        return self._makers[name]() or ""


def today_hours(clinic, now: datetime) -> str:
    """「今日の診療時間」: today's blocks with any 休診/代診, and the next open day when closed."""
    hours = schedule.hours_on(clinic, now.date())
    text = hours.summary().replace(schedule.format_day(now.date()), "本日", 1)
    if not hours.is_open:
        following = schedule.next_open_day(clinic, now.date())
        if following:
            blocks = " / ".join(b.text() for b in following.blocks)
            text += f"\n次の診療日は{schedule.format_day(following.day)}（{blocks}）です。"
    return text


def next_open_day(clinic, now: datetime) -> str:
    following = schedule.next_open_day(clinic, now.date())
    if following is None:
        return "しばらく診療日の予定がありません。お電話でお問い合わせください。"
    return f"次の診療日は{schedule.format_day(following.day)}です。\n{following.summary()}"


def closures_text(clinic, now: datetime) -> str:
    closures = schedule.upcoming_closures(clinic, now.date())
    if not closures:
        return "今後30日間の休診・代診の予定はありません。"
    return "休診・代診のお知らせ\n" + "\n".join("・" + schedule.describe_closure(c) for c in closures)


def _profile_answer(value: str, label: str, clinic) -> str:
    if value:
        return f"{label}\n{value}"
    phone = f"（{clinic.phone}）" if clinic.phone else ""
    return f"{label}については、お電話でお問い合わせください{phone}。"


def computed_text(kind: str, clinic, now: datetime) -> str:
    """The text of a computed answer, read from the schedule and the clinic profile at answer time."""
    if kind == Computed.TODAY_HOURS:
        return today_hours(clinic, now)
    if kind == Computed.WEEKLY_HOURS:
        return f"{clinic.name}の診療時間\n{schedule.weekly_text(clinic)}\n\n{today_hours(clinic, now)}"
    if kind == Computed.NEXT_OPEN_DAY:
        return next_open_day(clinic, now)
    if kind == Computed.CLOSURES:
        return closures_text(clinic, now)
    if kind == Computed.ACCESS:
        address = "\n".join(part for part in (clinic.address, clinic.access) if part)
        return _profile_answer(address, f"{clinic.name}へのアクセス", clinic)
    if kind == Computed.PARKING:
        return _profile_answer(clinic.parking, "駐車場のご案内", clinic)
    if kind == Computed.PHONE:
        return _profile_answer(clinic.phone, "お電話でのお問い合わせ", clinic)
    raise ValueError(f"unknown computed answer {kind!r}")
