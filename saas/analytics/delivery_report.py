"""One delivery's report: reach, opens, clicks per link, blocks and conversions, with its charts and CSV.

Every figure comes from a table a job keeps, a few indexed reads per page:

- reach: the delivery's receipts (friends LINE accepted it for; the unique
  ``(clinic_id, delivery_id, friend_id)`` index answers the count);
- opens and LINE's click counts: ``delivery_insight`` (LINE's per-request statistics, which LINE
  documents for broadcast and narrowcast requests) or, when no request has figures, the
  delivery's own aggregation unit ``dlv_<id>`` (``insight_unit``: how LINE counts push and
  multicast, which is how our sends go out). :attr:`LineFigures.source` says which one is shown;
- clicks per link: our tracked links (``saas.links``), always counted, per friend where the
  delivery's links were per recipient;
- blocks within 24 h / 72 h: ``delivery_insight``'s counters (``saas.insights.blocks``);
- conversions: ``analytics_conversion`` by kind, attributed to the last delivery received
  (``received_delivery_id``) and to the last one clicked (``clicked_delivery_id``).

LINE withholds small counts (privacy threshold): they stay None here and show as "—", never 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from saas.analytics.models import Conversion
from saas.analytics.reports import KIND_SERIES, WITHHELD, Chart, Series, rate
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.insights import services as insights
from saas.insights.models import InsightRequest, InsightUnit, RequestStatus
from saas.links.services import LinkStats, clicks_by_link, unique_clickers
from saas.receipts.models import FriendReceipt
from saas.security.csvsafe import csv_document


class Source:
    REQUEST = "request"  # LINE's per-request statistics (/v2/bot/insight/message/event)
    UNIT = "unit"  # the delivery's aggregation unit dlv_<id> (/v2/bot/insight/message/event/aggregation)
    SHARED_UNIT = "shared_unit"  # counted by LINE with other sends (seg_ / step_ unit): nothing per delivery
    NONE = "none"  # nothing from LINE yet


SOURCE_LABELS = {
    Source.REQUEST: _l("LINE の配信リクエストごとの統計"),
    Source.UNIT: _l("LINE の集計単位（customAggregationUnits）%(unit)s の統計"),
    Source.SHARED_UNIT: _l(
        "LINE はこの配信を集計単位 %(unit)s（同じ条件・同じステップの配信の合計）で数えるため、配信ごとの開封数はありません"
    ),
    Source.NONE: _l("LINE の統計はまだありません（配信の少し後から集計されます）"),
}


@dataclass(frozen=True)
class LineFigures:
    """LINE's opens and clicks for the delivery, and where they come from."""

    source: str
    stats: insights.DeliveryStats
    unit: str | None = None

    @property
    def source_label(self) -> str:
        return str(SOURCE_LABELS[self.source]) % {"unit": self.unit or ""}


def _sum(values: list[int | None]) -> tuple[int | None, bool]:
    known = [v for v in values if v is not None]
    return (sum(known) if known else None), len(known) not in (0, len(values))


def _unit_stats(stats: insights.DeliveryStats, rows: list[InsightUnit]) -> insights.DeliveryStats:
    """The delivery's figures from its own unit (one row per Japan month it was sent in)."""
    unique_opens, partial_opens = _sum([r.unique_impressions for r in rows])
    unique_clicks, partial_clicks = _sum([r.unique_clicks for r in rows])
    clicks: dict[str, dict] = {}
    for row in rows:
        for click in row.clicks or []:
            merged = clicks.setdefault(click["url"], {"url": click["url"], "clicks": [], "unique_clicks": []})
            merged["clicks"].append(click.get("clicks"))
            merged["unique_clicks"].append(click.get("unique_clicks"))
    return replace(
        stats,
        synced=True,
        partial=partial_opens or partial_clicks,
        delivered=None,  # LINE's unit statistics have no delivered count: reach is ours
        opens=_sum([r.impressions for r in rows])[0],
        unique_opens=unique_opens,
        unique_clicks=unique_clicks,
        media_played=_sum([r.unique_media_played for r in rows])[0],
        clicks=[
            {"url": url, "clicks": _sum(m["clicks"])[0], "unique_clicks": _sum(m["unique_clicks"])[0]}
            for url, m in clicks.items()
        ],
        synced_at=max(r.synced_at for r in rows),
    )


def _has_request_figures(delivery_id: int) -> bool:
    ready = sa.select(InsightRequest.id).where(
        InsightRequest.delivery_id == delivery_id, InsightRequest.status == RequestStatus.READY
    )
    return db.session.scalar(ready.limit(1)) is not None


def line_figures(delivery: Delivery) -> LineFigures:
    """Per-request statistics when LINE gave any, else the delivery's own unit's, else nothing yet."""
    stats = insights.delivery_stats(delivery.id)
    if stats.synced and _has_request_figures(delivery.id):  # else the row holds the unit's (insights.rollup)
        return LineFigures(Source.REQUEST, stats, stats.unit)
    own = list(
        db.session.scalars(
            sa.select(InsightUnit)
            .where(
                InsightUnit.delivery_id == delivery.id,
                InsightUnit.kind == "delivery",
                InsightUnit.synced_at.is_not(None),
            )
            .order_by(InsightUnit.month)
        )
    )
    if own:
        return LineFigures(Source.UNIT, _unit_stats(stats, own), own[0].name)
    if stats.unit and not stats.unit.startswith("dlv_"):
        return LineFigures(Source.SHARED_UNIT, stats, stats.unit)
    return LineFigures(Source.NONE, stats, stats.unit)


@dataclass(frozen=True)
class LinkRow:
    """One URL of the delivery: our tracked clicks and LINE's counts of it (None: withheld or unknown)."""

    url: str
    clicks: int
    unique: int | None  # None: the delivery's links were shared, counted per link only
    rate: float | None
    line_clicks: int | None = None
    line_unique: int | None = None
    line_listed: bool = False  # LINE's figures name this URL (else LINE reported nothing for it)


def _link_rows(tracked: list[LinkStats], line: LineFigures) -> list[LinkRow]:
    by_url = {c["url"]: c for c in line.stats.clicks}
    rows = [
        LinkRow(
            t.url,
            t.clicks,
            t.unique,
            t.rate,
            by_url.get(t.url, {}).get("clicks"),
            by_url.get(t.url, {}).get("unique_clicks"),
            t.url in by_url,
        )
        for t in tracked
    ]
    known = {t.url for t in tracked}
    rows += [
        LinkRow(c["url"], 0, None, None, c.get("clicks"), c.get("unique_clicks"), True)
        for c in line.stats.clicks
        if c["url"] not in known
    ]
    return rows


@dataclass
class DeliveryReport:
    delivery: Delivery
    reach: int
    conversions: dict[str, int]  # kind → conversions whose last received delivery is this one
    clicked_conversions: dict[str, int] = field(default_factory=dict)  # … whose last clicked one is
    line: LineFigures | None = None
    links: list[LinkRow] = field(default_factory=list)
    clickers: int | None = None  # friends who tapped any tracked link, once each (None: shared links)

    @property
    def stats(self) -> insights.DeliveryStats:
        return self.line.stats

    @property
    def conversion_total(self) -> int:
        return sum(self.conversions.values())

    @property
    def clicked_total(self) -> int:
        return sum(self.clicked_conversions.values())

    @property
    def click_rate(self) -> float | None:
        return None if self.clickers is None else rate(self.clickers, self.reach)

    @property
    def conversion_rate(self) -> float | None:
        return rate(self.conversion_total, self.reach)

    @property
    def open_rate(self) -> float | None:
        opens = self.stats.unique_opens
        return None if opens is None or not self.stats.synced else rate(opens, self.reach)

    @property
    def blocks_24h(self) -> int:
        return self.stats.blocks_24h

    @property
    def blocks_72h(self) -> int:
        return self.stats.blocks_72h

    def _line_value(self, value: int | None) -> int | None:
        return value if self.stats.synced else None

    def funnel_chart(self) -> Chart:
        """Reached, opened, clicked and blocked: LINE's withheld counts stay empty (never 0)."""
        return Chart(
            "funnel",
            _l("届いた・開封・クリック・ブロック"),
            _l("指標"),
            [
                str(_l("届いた友だち")),
                str(_l("開封した人（LINE）")),
                str(_l("クリックした人（LINE）")),
                str(_l("クリックした友だち（リンク計測）")),
                str(_l("リンクのクリック数（リンク計測）")),
                str(_l("ブロック（24時間以内）")),
                str(_l("ブロック（72時間以内）")),
            ],
            [
                Series(
                    "count",
                    _l("人数・件数"),
                    [
                        self.reach,
                        self._line_value(self.stats.unique_opens),
                        self._line_value(self.stats.unique_clicks),
                        self.clickers,
                        sum(link.clicks for link in self.links),
                        self.blocks_24h,
                        self.blocks_72h,
                    ],
                    "#3e63dd",
                )
            ],
            horizontal=True,
        )

    def links_chart(self) -> Chart:
        """Clicks per URL: ours (tracked links) and LINE's."""
        return Chart(
            "links",
            _l("リンクごとのクリック"),
            _l("URL"),
            [link.url for link in self.links],
            [
                Series("clicks", _l("クリック"), [link.clicks for link in self.links], "#3e63dd"),
                Series("unique", _l("クリックした友だち"), [link.unique for link in self.links], "#06c755"),
                Series(
                    "line_clicks",
                    _l("クリック（LINE集計）"),
                    [self._line_value(link.line_clicks) for link in self.links],
                    "#8e4ec6",
                ),
            ],
            horizontal=True,
        )

    def chart(self) -> Chart:
        """Conversions by kind: attributed as the last delivery received, and as the last one clicked."""
        kinds = [kind for kind, _label, _color in KIND_SERIES]
        return Chart(
            "conversions",
            _l("この配信のコンバージョン"),
            _l("種類"),
            [str(label) for _kind, label, _color in KIND_SERIES],
            [
                Series("received", _l("最後に受け取った配信"), [self.conversions.get(k, 0) for k in kinds], "#3e63dd"),
                Series(
                    "clicked",
                    _l("最後にクリックした配信"),
                    [self.clicked_conversions.get(k, 0) for k in kinds],
                    "#f76b15",
                ),
            ],
        )

    def charts(self) -> dict[str, Chart]:
        charts = [self.funnel_chart(), self.links_chart(), self.chart()]
        return {chart.name: chart for chart in charts}

    def csv(self) -> str:
        """Every number of the page as CSV: section, item, value, note. Withheld counts are "—"."""
        return csv_document([_l("区分"), _l("項目"), _l("値"), _l("補足")], self._csv_rows())

    def _line_cell(self, value: int | None) -> object:
        if not self.stats.synced:
            return WITHHELD
        if value is None:
            return WITHHELD
        return f"≥{value}" if self.stats.partial else value

    def _csv_rows(self) -> list[list]:
        reach, line, links, conversions = _l("到達"), _l("LINEの統計"), _l("リンク"), _l("コンバージョン")
        note = self.line.source_label
        withheld = str(insights.WITHHELD_NOTE) if self.stats.synced else str(insights.PENDING_NOTE)
        rows: list[list] = [
            [reach, _l("届いた友だち（LINEが受け付けた人数）"), self.reach, ""],
            [line, _l("配信数（LINE）"), self._line_cell(self.stats.delivered), note],
            [line, _l("開封数"), self._line_cell(self.stats.opens), note],
            [line, _l("開封した人"), self._line_cell(self.stats.unique_opens), note],
            [line, _l("クリックした人（LINE集計）"), self._line_cell(self.stats.unique_clicks), note],
            [
                links,
                _l("クリックした友だち（リンク計測・1人1回）"),
                WITHHELD if self.clickers is None else self.clickers,
                "" if self.clickers is not None else _l("リンクが友だちごとでないため人数は数えられません"),
            ],
            [_l("ブロック"), _l("24時間以内"), self.blocks_24h, ""],
            [_l("ブロック"), _l("72時間以内"), self.blocks_72h, ""],
        ]
        for link in self.links:
            rows.append([links, link.url, link.clicks, _l("クリック（リンク計測）")])
            rows.append([links, link.url, WITHHELD if link.unique is None else link.unique, _l("クリックした友だち")])
            rows.append([links, link.url, self._line_cell(link.line_clicks), _l("クリック（LINE集計）")])
        for kind, label, _color in KIND_SERIES:
            rows.append([conversions, label, self.conversions.get(kind, 0), _l("最後に受け取った配信")])
            rows.append([conversions, label, self.clicked_conversions.get(kind, 0), _l("最後にクリックした配信")])
        rows.append(["", _l("「—」について"), "", withheld])
        return rows


def _conversions_by(column, delivery: Delivery) -> dict[str, int]:
    rows = db.session.execute(
        sa.select(Conversion.kind, sa.func.count())
        .where(Conversion.clinic_id == delivery.clinic_id, column == delivery.id)
        .group_by(Conversion.kind)
    ).all()
    return dict(rows)


def report(delivery: Delivery) -> DeliveryReport:
    """The delivery's whole report (the caller's tenant scope applies)."""
    reach = db.session.scalar(
        sa.select(sa.func.count()).where(
            FriendReceipt.clinic_id == delivery.clinic_id, FriendReceipt.delivery_id == delivery.id
        )
    )
    line = line_figures(delivery)
    return DeliveryReport(
        delivery,
        reach or 0,
        _conversions_by(Conversion.received_delivery_id, delivery),
        _conversions_by(Conversion.clicked_delivery_id, delivery),
        line,
        _link_rows(clicks_by_link(delivery.id), line),
        unique_clickers(delivery.id),
    )
