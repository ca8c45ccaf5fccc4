"""The analytics pages' figures, read from the roll-ups only (never the raw events).

Each chart is a :class:`Chart`: labels, named series and the CSV of exactly those numbers, so
what the page draws and what the export says cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from saas.analytics.models import ClinicDay, Conversion, ConversionKind, SourceDay
from saas.analytics.rollup import day_start, japan_today
from saas.delivery.describe import title_in_words
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.security.csvsafe import csv_document
from saas.sources.models import InflowSource
from saas.tenancy.scoping import clinic_in, dialect_name

PERIODS = (7, 30, 90, 365)
DEFAULT_PERIOD = 30


def period_days(value) -> int:
    """The period a request asks for, one of ``PERIODS`` (anything else: the default)."""
    try:
        days = int(value)
    except (TypeError, ValueError):
        return DEFAULT_PERIOD
    return days if days in PERIODS else DEFAULT_PERIOD


def period_range(days: int, today: date | None = None) -> list[date]:
    today = today or japan_today()
    return [today - timedelta(days=n) for n in range(days - 1, -1, -1)]


def rate(part: int, whole: int) -> float | None:
    """A percentage with one decimal, or None when there is nothing to divide by."""
    return round(part * 100 / whole, 1) if whole else None


WITHHELD = "—"  # a number LINE withheld or there is none of: a CSV cell says so instead of staying blank


def _cell(value: object) -> object:
    return WITHHELD if value is None else value


@dataclass
class Series:
    key: str
    label: str
    data: list
    color: str = "#06c755"
    kind: str = "bar"  # bar | line


@dataclass
class Chart:
    name: str
    title: str
    label_heading: str
    labels: list[str]
    series: list[Series] = field(default_factory=list)
    horizontal: bool = False
    ids: list[int] = field(default_factory=list)  # what each label stands for, where the page links it
    note: str = ""  # shown under the chart (e.g. that it draws only the top clinics)

    def csv(self) -> str:
        """The chart's numbers as CSV (UTF-8 with BOM): one row per label, one column per series.
        Labels are names staff typed (clinics, sources, titles): formula-like ones are neutralised.
        Withheld or no-data cells (None, empty on the chart) are 「—」, never an empty cell read as 0."""
        header = [self.label_heading, *(s.label for s in self.series)]
        rows = ([label, *(_cell(s.data[n]) for s in self.series)] for n, label in enumerate(self.labels))
        return csv_document(header, rows)

    def js(self) -> dict:
        """What the page's script needs to draw it."""
        return {
            "horizontal": self.horizontal,
            "series": [{"label": str(s.label), "data": s.data, "color": s.color, "kind": s.kind} for s in self.series],
        }


def _clinic_days(clinic_ids: list[int], days: list[date]) -> list[ClinicDay]:
    statement = sa.select(ClinicDay).where(
        clinic_in(ClinicDay.clinic_id, clinic_ids, dialect_name()), ClinicDay.day.between(days[0], days[-1])
    )
    return list(db.session.scalars(statement))


def _day_before(clinic_ids: list[int], day: date) -> dict[int, int]:
    """Each clinic's friends at the end of the day before the period (its starting point)."""
    statement = sa.select(ClinicDay.clinic_id, ClinicDay.friends_total).where(
        clinic_in(ClinicDay.clinic_id, clinic_ids, dialect_name()), ClinicDay.day == day - timedelta(days=1)
    )
    return dict(db.session.execute(statement).all())


@dataclass
class ClinicFigures:
    """A clinic's period: daily rows and the totals the tiles show."""

    days: list[date]
    rows: dict[date, ClinicDay]
    friends_at_start: int

    def daily(self, name: str) -> list[int]:
        return [getattr(self.rows[d], name) if d in self.rows else 0 for d in self.days]

    def total(self, name: str) -> int:
        return sum(self.daily(name))

    @property
    def friends_now(self) -> int:
        last = [self.rows[d].friends_total for d in self.days if d in self.rows]
        return last[-1] if last else self.friends_at_start

    @property
    def growth(self) -> int:
        return self.friends_now - self.friends_at_start

    @property
    def block_rate(self) -> float | None:
        """Blocks in the period per friend there was to lose (at its start plus those who joined)."""
        return rate(self.total("blocks"), self.friends_at_start + self.total("follows"))


def figures_for(clinic_ids: list[int], days: int) -> dict[int, ClinicFigures]:
    """Each clinic's period, in two queries however many clinics there are."""
    wanted = period_range(days)
    rows: dict[int, dict[date, ClinicDay]] = {clinic_id: {} for clinic_id in clinic_ids}
    for row in _clinic_days(clinic_ids, wanted):
        rows[row.clinic_id][row.day] = row
    start = _day_before(clinic_ids, wanted[0])
    return {clinic_id: ClinicFigures(wanted, rows[clinic_id], start.get(clinic_id, 0)) for clinic_id in clinic_ids}


@dataclass
class PeriodTotals:
    """A clinic's sums over a period (what the organization and agency pages compare), read set-based."""

    friends_at_start: int
    friends_end: int | None  # friends at the end of the period's last rolled-up day
    sums: dict[str, int]

    def total(self, name: str) -> int:
        return self.sums.get(name, 0)

    @property
    def friends_now(self) -> int:
        return self.friends_at_start if self.friends_end is None else self.friends_end

    @property
    def growth(self) -> int:
        return self.friends_now - self.friends_at_start

    @property
    def block_rate(self) -> float | None:
        return rate(self.total("blocks"), self.friends_at_start + self.total("follows"))


TOTALLED = ("follows", "blocks", "bookings", "redemptions", "failed_sends")


def totals_for(
    clinic_ids: list[int], days: int, recent_days: int
) -> tuple[dict[int, PeriodTotals], dict[int, PeriodTotals]]:
    """Each clinic's totals over the period and over its last ``recent_days``, in three queries
    (sums grouped by clinic, the friends at each start, the friends at each clinic's last day)
    however many clinics and days there are; no roll-up row is loaded as an object."""
    wanted, recent = period_range(days), period_range(recent_days)
    first, recent_first = min(wanted[0], recent[0]), recent[0]
    in_period = ClinicDay.day >= wanted[0]
    in_recent = ClinicDay.day >= recent_first
    columns = [sa.func.sum(sa.case((in_period, getattr(ClinicDay, n)), else_=0)) for n in TOTALLED]
    columns += [sa.func.sum(sa.case((in_recent, getattr(ClinicDay, n)), else_=0)) for n in TOTALLED]
    sums = {
        clinic_id: [int(v or 0) for v in values]
        for clinic_id, *values in db.session.execute(
            sa.select(ClinicDay.clinic_id, *columns)
            .where(clinic_in(ClinicDay.clinic_id, clinic_ids, dialect_name()), ClinicDay.day.between(first, wanted[-1]))
            .group_by(ClinicDay.clinic_id)
        )
    }
    starts: dict[tuple[int, date], int] = {
        (clinic_id, day): total
        for clinic_id, day, total in db.session.execute(
            sa.select(ClinicDay.clinic_id, ClinicDay.day, ClinicDay.friends_total).where(
                clinic_in(ClinicDay.clinic_id, clinic_ids, dialect_name()),
                ClinicDay.day.in_({wanted[0] - timedelta(days=1), recent_first - timedelta(days=1)}),
            )
        )
    }
    last_day = (
        sa.select(ClinicDay.clinic_id, sa.func.max(ClinicDay.day).label("day"))
        .where(clinic_in(ClinicDay.clinic_id, clinic_ids, dialect_name()), ClinicDay.day.between(first, wanted[-1]))
        .group_by(ClinicDay.clinic_id)
        .subquery()
    )
    ends = dict(
        db.session.execute(
            sa.select(ClinicDay.clinic_id, ClinicDay.friends_total).join(
                last_day, sa.and_(last_day.c.clinic_id == ClinicDay.clinic_id, last_day.c.day == ClinicDay.day)
            )
        ).all()
    )
    n = len(TOTALLED)

    def totals(clinic_id: int, start: date, values: list[int], end: int | None) -> PeriodTotals:
        return PeriodTotals(
            starts.get((clinic_id, start - timedelta(days=1)), 0), end, dict(zip(TOTALLED, values, strict=True))
        )

    period, latest = {}, {}
    for clinic_id in clinic_ids:
        values = sums.get(clinic_id, [0] * 2 * n)
        end = ends.get(clinic_id)
        period[clinic_id] = totals(clinic_id, wanted[0], values[:n], end)
        latest[clinic_id] = totals(clinic_id, recent_first, values[n:], end)
    return period, latest


def clinic_figures(clinic_id: int, days: int) -> ClinicFigures:
    return figures_for([clinic_id], days)[clinic_id]


def _labels(days: list[date]) -> list[str]:
    return [d.strftime("%m/%d") for d in days]


def friends_chart(figures: ClinicFigures) -> Chart:
    return Chart(
        "friends",
        _l("友だち数の推移"),
        _l("日付"),
        _labels(figures.days),
        [Series("friends_total", _l("友だち数"), figures.daily("friends_total"), "#06c755", "line")],
    )


def follows_chart(figures: ClinicFigures) -> Chart:
    blocks, totals = figures.daily("blocks"), figures.daily("friends_total")
    before = [figures.friends_at_start, *totals[:-1]]
    return Chart(
        "follows",
        _l("友だち追加・ブロック"),
        _l("日付"),
        _labels(figures.days),
        [
            Series("follows", _l("友だち追加"), figures.daily("follows"), "#06c755"),
            Series("blocks", _l("ブロック"), blocks, "#e5484d"),
            Series(
                "block_rate",
                _l("ブロック率（%）"),
                [rate(b, f) for b, f in zip(blocks, before, strict=True)],
                "#8e4ec6",
                "line",
            ),
        ],
    )


def activity_chart(figures: ClinicFigures) -> Chart:
    return Chart(
        "activity",
        _l("予約・クーポン・問診票・スタンプ"),
        _l("日付"),
        _labels(figures.days),
        [
            Series("bookings", _l("予約"), figures.daily("bookings"), "#3e63dd"),
            Series("redemptions", _l("クーポン利用"), figures.daily("redemptions"), "#f76b15"),
            Series("form_answers", _l("問診票・アンケート回答"), figures.daily("form_answers"), "#12a594"),
            Series("stamps", _l("スタンプ"), figures.daily("stamps"), "#ffc53d"),
        ],
    )


def sending_chart(figures: ClinicFigures) -> Chart:
    return Chart(
        "sending",
        _l("配信・メッセージ送信・クリック"),
        _l("日付"),
        _labels(figures.days),
        [
            Series("deliveries", _l("配信"), figures.daily("deliveries"), "#3e63dd"),
            Series("messages_sent", _l("送信メッセージ"), figures.daily("messages_sent"), "#06c755", "line"),
            Series("clicks", _l("リンクのクリック"), figures.daily("clicks"), "#8e4ec6", "line"),
        ],
    )


@dataclass
class SourceRank:
    source_id: int
    name: str
    follows: int
    blocks: int
    bookings: int

    @property
    def block_rate(self) -> float | None:
        return rate(self.blocks, self.follows)


def source_ranking(clinic_id: int, days: int) -> list[SourceRank]:
    """Inflow sources by friends added in the period (then bookings), with their blocks and bookings."""
    wanted = period_range(days)
    statement = (
        sa.select(
            SourceDay.source_id,
            sa.func.sum(SourceDay.follows),
            sa.func.sum(SourceDay.blocks),
            sa.func.sum(SourceDay.bookings),
        )
        .where(SourceDay.clinic_id == clinic_id, SourceDay.day.between(wanted[0], wanted[-1]))
        .group_by(SourceDay.source_id)
    )
    sums = db.session.execute(statement).all()
    names = dict(db.session.execute(sa.select(InflowSource.id, InflowSource.name)).all())
    ranks = [
        SourceRank(s, names.get(s) or str(_l("経路なし（検索・ID・その他）")), int(f or 0), int(b or 0), int(k or 0))
        for s, f, b, k in sums
    ]
    return sorted(ranks, key=lambda r: (-r.follows, -r.bookings, r.name))


def sources_chart(ranks: list[SourceRank]) -> Chart:
    return Chart(
        "sources",
        _l("流入経路ランキング"),
        _l("流入経路"),
        [r.name for r in ranks],
        [
            Series("follows", _l("友だち追加"), [r.follows for r in ranks], "#06c755"),
            Series("blocks", _l("ブロック"), [r.blocks for r in ranks], "#e5484d"),
            Series("bookings", _l("予約"), [r.bookings for r in ranks], "#3e63dd"),
        ],
        horizontal=True,
    )


TOP_DELIVERIES = 10
KIND_SERIES = (
    (ConversionKind.BOOKING, _l("予約"), "#3e63dd"),
    (ConversionKind.REDEMPTION, _l("クーポン利用"), "#f76b15"),
    (ConversionKind.FORM_ANSWER, _l("問診票・アンケート回答"), "#12a594"),
    (ConversionKind.STAMP, _l("スタンプ"), "#ffc53d"),
)


def _conversions_by_delivery(clinic_id: int, days: int, column) -> dict[int, dict[str, int]]:
    wanted = period_range(days)
    since, until = day_start(wanted[0]), day_start(wanted[-1] + timedelta(days=1))
    rows = db.session.execute(
        sa.select(column, Conversion.kind, sa.func.count())
        .where(
            Conversion.clinic_id == clinic_id,
            Conversion.occurred_at >= since,
            Conversion.occurred_at < until,
            column.is_not(None),
        )
        .group_by(column, Conversion.kind)
    ).all()
    counts: dict[int, dict[str, int]] = {}
    for delivery_id, kind, n in rows:
        counts.setdefault(delivery_id, {})[kind] = n
    return counts


def conversions_chart(clinic_id: int, days: int, with_titles: bool = True) -> Chart:
    """The deliveries the most conversions in the period are attributed to: by kind for the last
    delivery received, and in all for the last delivery whose link was clicked. Without titles
    (for analysts) a delivery is named by its number alone."""
    received = _conversions_by_delivery(clinic_id, days, Conversion.received_delivery_id)
    clicked = {d: sum(kinds.values()) for d, kinds in _conversions_by_delivery(
        clinic_id, days, Conversion.clicked_delivery_id).items()}  # fmt: skip
    weight = {d: sum(received.get(d, {}).values()) + clicked.get(d, 0) for d in set(received) | set(clicked)}
    top = sorted(weight, key=lambda d: (-weight[d], -d))[:TOP_DELIVERIES]
    titles = (
        dict(db.session.execute(sa.select(Delivery.id, Delivery.title).where(Delivery.id.in_(top))).all())
        if with_titles
        else {}
    )
    series = [
        Series(kind, label, [received.get(d, {}).get(kind, 0) for d in top], color)
        for kind, label, color in KIND_SERIES
    ]
    series.append(
        Series("clicked", _l("クリック経由（最後にクリックした配信）"), [clicked.get(d, 0) for d in top], "#8e4ec6")
    )
    return Chart(
        "conversions",
        _l("配信ごとのコンバージョン（最後に受け取った配信・最後にクリックした配信）"),
        _l("配信"),
        [f"#{d} {title_in_words(titles.get(d) or '')}".strip() for d in top],
        series,
        horizontal=True,
        ids=top,
    )


def clinic_charts(
    clinic_id: int, days: int, with_titles: bool = True
) -> tuple[ClinicFigures, list[SourceRank], dict[str, Chart]]:
    """Everything the clinic analytics page shows for the period."""
    figures = clinic_figures(clinic_id, days)
    ranks = source_ranking(clinic_id, days)
    charts = [
        friends_chart(figures),
        follows_chart(figures),
        sending_chart(figures),
        activity_chart(figures),
        sources_chart(ranks),
        conversions_chart(clinic_id, days, with_titles),
    ]
    return figures, ranks, {chart.name: chart for chart in charts}
