"""Timing: clicks and opens by weekday × hour (Japan time) and a suggested best time to send.

- **Clicks** by the hour the tap happened: summed from ``analytics_click_hour`` (one row per
  clinic, Japan day and hour, kept by the dirty-mark roll-up), never from ``link_click``.
- **Opens**: LINE gives no per-user open times, so the open rate is by the hour a delivery was
  sent: LINE's unique opens over the recipients it reached, from ``delivery_insight`` (one row per
  delivery; deliveries whose opens LINE withheld are left out of both sides).
- **Suggestion**: among send slots with at least ``MIN_SENDS`` deliveries and ``MIN_RECIPIENTS``
  recipients in the period, the highest open rate plus click rate (LINE's clicking friends over
  the recipients of the sends whose clicks LINE told us; 0 where it told none), so a time whose
  messages are opened *and* tapped beats one that is only opened; ties: the higher click rate,
  then more recipients. With no such slot, or none with known opens, nothing is suggested and
  the page says why: never a guess from nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext

from saas.analytics.models import ClickHour
from saas.analytics.reports import Chart, Series, period_range, rate
from saas.analytics.rollup import JAPAN_OFFSET, day_start
from saas.extensions import db
from saas.insights.models import DeliveryInsight

TIMING_DAYS = 90
MIN_SENDS = 3
MIN_RECIPIENTS = 100
WEEKDAYS = tuple(lazy_pgettext("weekday", day) for day in "月火水木金土日")  # the catalog words them in context
HOURS = range(24)
HEAT_LEVELS = 5


@dataclass
class Slot:
    sends: int = 0
    recipients: int = 0
    opened_base: int = 0  # recipients of the sends whose opens LINE told us
    opens: int = 0
    clicked_base: int = 0  # recipients of the sends whose clicking friends LINE told us
    clickers: int = 0

    @property
    def open_rate(self) -> float | None:
        return rate(self.opens, self.opened_base)

    @property
    def click_rate(self) -> float | None:
        return rate(self.clickers, self.clicked_base)

    @property
    def score(self) -> tuple[float, float, int]:
        """How the suggestion ranks slots: open rate + click rate, then click rate, then recipients."""
        clicks = self.click_rate or 0.0
        return (round((self.open_rate or 0.0) + clicks, 1), clicks, self.recipients)


@dataclass
class Suggestion:
    weekday: int | None
    hour: int | None
    open_rate: float | None
    reason: str  # why nothing is suggested (empty when something is)
    click_rate: float | None = None

    @property
    def text(self) -> str:
        if self.weekday is None:
            return ""
        return _("%(day)s曜 %(hour)d時台", day=WEEKDAYS[self.weekday], hour=self.hour)


def click_grid(clinic_id: int, days: int = TIMING_DAYS) -> list[list[int]]:
    """Taps per [weekday][hour] (Monday first) over the last ``days`` Japan days."""
    wanted = period_range(days)
    grid = [[0] * 24 for _ in WEEKDAYS]
    rows = db.session.execute(
        sa.select(ClickHour.day, ClickHour.hour, ClickHour.clicks).where(
            ClickHour.clinic_id == clinic_id, ClickHour.day.between(wanted[0], wanted[-1])
        )
    )
    for day, hour, clicks in rows:
        grid[day.weekday()][hour] += clicks
    return grid


def send_slots(clinic_id: int, days: int = TIMING_DAYS) -> dict[tuple[int, int], Slot]:
    """Per (weekday, hour) the deliveries were sent in: sends, recipients reached, LINE's opens and clicks."""
    wanted = period_range(days)
    since, until = day_start(wanted[0]), day_start(wanted[-1] + timedelta(days=1))
    rows = db.session.execute(
        sa.select(
            DeliveryInsight.sent_at,
            DeliveryInsight.reached,
            DeliveryInsight.unique_impressions,
            DeliveryInsight.unique_clicks,
        ).where(
            DeliveryInsight.clinic_id == clinic_id,
            DeliveryInsight.sent_at >= since,
            DeliveryInsight.sent_at < until,
            DeliveryInsight.reached > 0,
        )
    )
    slots: dict[tuple[int, int], Slot] = defaultdict(Slot)
    for sent_at, reached, opens, clickers in rows:
        local = sent_at + JAPAN_OFFSET
        slot = slots[(local.weekday(), local.hour)]
        slot.sends, slot.recipients = slot.sends + 1, slot.recipients + reached
        if opens is not None:
            slot.opened_base, slot.opens = slot.opened_base + reached, slot.opens + opens
        if clickers is not None:
            slot.clicked_base, slot.clickers = slot.clicked_base + reached, slot.clickers + clickers
    return dict(slots)


def suggest(slots: dict[tuple[int, int], Slot], days: int = TIMING_DAYS) -> Suggestion:
    """The best send slot, or why there is none yet."""
    enough = {key: slot for key, slot in slots.items() if slot.sends >= MIN_SENDS and slot.recipients >= MIN_RECIPIENTS}
    if not enough:
        reason = _(
            "直近%(days)d日に、同じ曜日・時間帯で%(sends)d回以上・のべ%(recipients)d人以上に送った配信がまだないため、おすすめの時間は出せません。",
            days=days,
            sends=MIN_SENDS,
            recipients=MIN_RECIPIENTS,
        )
        return Suggestion(None, None, None, reason)
    known = {key: slot for key, slot in enough.items() if slot.open_rate is not None}
    if not known:
        reason = _("LINEが開封数を公表していない（人数が少ない）配信ばかりのため、おすすめの時間は出せません。")
        return Suggestion(None, None, None, reason)
    (weekday, hour), best = max(known.items(), key=lambda item: item[1].score)
    return Suggestion(weekday, hour, best.open_rate, "", best.click_rate)


def _grid_chart(name: str, title, grid: list[list]) -> Chart:
    return Chart(
        name,
        title,
        _l("曜日"),
        [str(day) for day in WEEKDAYS],
        [Series(f"h{hour}", _l("%(hour)d時", hour=hour), [grid[w][hour] for w in range(7)]) for hour in HOURS],
    )


def clicks_chart(clinic_id: int, days: int = TIMING_DAYS) -> Chart:
    return _grid_chart("click_times", _l("クリックされた曜日・時間帯（件数）"), click_grid(clinic_id, days))


def opens_chart(slots: dict[tuple[int, int], Slot]) -> Chart:
    grid = [[slots[(w, h)].open_rate if (w, h) in slots else None for h in HOURS] for w in range(7)]
    return _grid_chart("open_times", _l("配信した曜日・時間帯ごとの開封率（%）"), grid)


def heat_levels(chart: Chart) -> list[list[int]]:
    """Per [weekday][hour] a shade 0-5 for the heatmap (0: none or unknown), relative to the busiest cell."""
    values = [[s.data[w] for s in chart.series] for w in range(len(chart.labels))]
    top = max((v for row in values for v in row if v), default=0)
    return [[0 if not v or not top else max(1, round(HEAT_LEVELS * v / top)) for v in row] for row in values]


def timing(clinic_id: int, days: int = TIMING_DAYS) -> dict:
    """What the page's timing section shows: both heatmaps (with CSVs) and the suggestion."""
    slots = send_slots(clinic_id, days)
    return {"clicks": clicks_chart(clinic_id, days), "opens": opens_chart(slots), "suggestion": suggest(slots, days)}
