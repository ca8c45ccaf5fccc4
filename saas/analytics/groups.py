"""The organization page (branches compared) and the agency page (clients and their health).

Who opens them: the agency page, members of that agency (and platform staff); the organization
page, members of that organization (its HQ) and of the agency above it — each with a role that
holds ``analytics.view`` there. A clinic-level membership never opens a level page, even when the
clinic belongs to it: the health columns (unanswered chats, quota) are the agency's business. Any
other viewer gets a 404, as for a level that does not exist. Figures come from the roll-ups and
the capabilities' own counters (unanswered chats, this month's included messages left), each read
for all clinics at once, set-based: the page costs the same few queries for 10 or 1,000 clinics.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import NamedTuple

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from saas.analytics.reports import Chart, PeriodTotals, Series, period_range, rate, totals_for
from saas.analytics.rollup import day_start
from saas.auth.roles import Scope, allows
from saas.extensions import db
from saas.inbox.services import unanswered_counts
from saas.insights.models import DeliveryInsight
from saas.quota.usage import included_left_this_month
from saas.tenancy.models import Agency, Clinic, Organization
from saas.tenancy.scoping import clinic_in, dialect_name

ALERT_DAYS = 7  # the block-rate alert looks at the last week
ALERT_BLOCK_RATE = 2.0  # % of the friends there were to lose
ALERT_MIN_BLOCKS = 3  # a small clinic's one or two blocks are not an alert
PAGE_SIZE = 50  # table rows per page (the CSVs have every clinic)
CHART_TOP = 30  # bars per chart when there are more clinics (the CSVs have every clinic)


def _analysing(user) -> list:
    """The user's memberships whose role holds ``analytics.view``."""
    return [m for m in user.memberships if allows({m.role}, "analytics.view")]


def may_analyse(user, level) -> bool:
    """Whether the user may open this agency's or organization's page (see the module docstring)."""
    for membership in _analysing(user):
        if membership.scope == Scope.PLATFORM:
            return True
        agency_id = level.id if isinstance(level, Agency) else level.agency_id
        if membership.scope == Scope.AGENCY and agency_id is not None and membership.agency_id == agency_id:
            return True
        at_organization = isinstance(level, Organization) and membership.organization_id == level.id
        if membership.scope == Scope.ORGANIZATION and at_organization:
            return True
    return False


class LevelClinic(NamedTuple):
    """What the level pages show of a clinic: plain columns, no ORM object for each of 1,000."""

    id: int
    slug: str
    name: str
    organization_name: str


def level_clinics(user, model, slug: str) -> tuple[object, list[LevelClinic]] | None:
    """The organization or agency and its clinics, for a user who may analyse it; None: a 404."""
    level = db.session.scalar(sa.select(model).where(model.slug == slug))
    if level is None or not may_analyse(user, level):
        return None
    statement = (
        sa.select(Clinic.id, Clinic.slug, Clinic.name, Organization.name)
        .join(Clinic.organization)
        .order_by(Organization.name, Clinic.name)
    )
    if model is Organization:
        statement = statement.where(Clinic.organization_id == level.id)
    else:
        statement = statement.where(Organization.agency_id == level.id)
    clinics = [LevelClinic(*row) for row in db.session.execute(statement)]
    return (level, clinics) if clinics else None


def analysed_levels(user) -> list[tuple[str, object]]:
    """("organization" | "agency", level) for every level page the user may open."""
    memberships = _analysing(user)
    if not memberships:
        return []
    if any(m.scope == Scope.PLATFORM for m in memberships):
        agencies = list(db.session.scalars(sa.select(Agency)))
        organizations = list(db.session.scalars(sa.select(Organization)))
    else:
        agency_ids = {m.agency_id for m in memberships if m.scope == Scope.AGENCY}
        organization_ids = {m.organization_id for m in memberships if m.scope == Scope.ORGANIZATION}
        agencies = list(db.session.scalars(sa.select(Agency).where(Agency.id.in_(agency_ids)))) if agency_ids else []
        organizations = (
            list(
                db.session.scalars(
                    sa.select(Organization).where(
                        sa.or_(Organization.id.in_(organization_ids), Organization.agency_id.in_(agency_ids))
                    )
                )
            )
            if agency_ids or organization_ids
            else []
        )
    found = [("agency", a) for a in agencies] + [("organization", o) for o in organizations]
    return sorted(found, key=lambda p: (p[0] != "agency", p[1].name))


@dataclass
class Branch:
    clinic: LevelClinic
    figures: PeriodTotals
    recent: PeriodTotals | None = None  # the last ALERT_DAYS, for the block-rate alert
    unanswered: int = 0
    included_left: int = 0
    open_rate: float | None = None  # LINE's unique opens ÷ recipients, over the period's sends
    click_rate: float | None = None  # LINE's clicking friends ÷ recipients

    @property
    def failed_sends(self) -> int:
        return self.figures.total("failed_sends")

    @property
    def recent_block_rate(self) -> float | None:
        return self.recent.block_rate if self.recent else None

    @property
    def recent_blocks(self) -> int:
        return self.recent.total("blocks") if self.recent else 0

    @property
    def block_alert(self) -> bool:
        rate_now = self.recent_block_rate or 0.0
        return rate_now >= ALERT_BLOCK_RATE and self.recent_blocks >= ALERT_MIN_BLOCKS


def branches(clinics: list[LevelClinic], days: int, *, health: bool = False) -> list[Branch]:
    """Each clinic's period totals, and with ``health`` its chats, quota and last week's blocks."""
    ids = [c.id for c in clinics]
    period, recent = totals_for(ids, days, ALERT_DAYS)
    rows = [Branch(c, period[c.id], recent[c.id]) for c in clinics]
    rates = line_rates(ids, days)
    for row in rows:
        row.open_rate, row.click_rate = rates.get(row.clinic.id, (None, None))
    if health:
        unanswered, left = unanswered_counts(ids), included_left_this_month(ids)
        for row in rows:
            row.unanswered, row.included_left = unanswered.get(row.clinic.id, 0), left.get(row.clinic.id, 0)
    return rows


def line_rates(clinic_ids: list[int], days: int) -> dict[int, tuple[float | None, float | None]]:
    """Each clinic's open and click rate over the period's sends: LINE's unique opens (clicking
    friends) ÷ the recipients of the sends LINE gave that count for (withheld counts are left out,
    as on the timing heatmap). One grouped query over ``delivery_insight``, a row per delivery."""
    wanted = period_range(days)
    opened, clicked = DeliveryInsight.unique_impressions.is_not(None), DeliveryInsight.unique_clicks.is_not(None)
    statement = (
        sa.select(
            DeliveryInsight.clinic_id,
            sa.func.sum(sa.case((opened, DeliveryInsight.unique_impressions), else_=0)),
            sa.func.sum(sa.case((opened, DeliveryInsight.reached), else_=0)),
            sa.func.sum(sa.case((clicked, DeliveryInsight.unique_clicks), else_=0)),
            sa.func.sum(sa.case((clicked, DeliveryInsight.reached), else_=0)),
        )
        .where(
            clinic_in(DeliveryInsight.clinic_id, clinic_ids, dialect_name()),
            DeliveryInsight.sent_at >= day_start(wanted[0]),
            DeliveryInsight.sent_at < day_start(wanted[-1] + timedelta(days=1)),
            DeliveryInsight.reached > 0,
        )
        .group_by(DeliveryInsight.clinic_id)
    )
    return {
        clinic_id: (rate(int(opens), int(opened_of)), rate(int(clickers), int(clicked_of)))
        for clinic_id, opens, opened_of, clickers, clicked_of in db.session.execute(statement)
    }


def _name(row: Branch, with_organization: bool) -> str:
    return f"{row.clinic.organization_name} / {row.clinic.name}" if with_organization else row.clinic.name


def _known(value: float | None) -> tuple[bool, float]:
    """A sort key for a rate that may be unknown (unknown sorts below every known rate)."""
    return (value is not None, value or 0.0)


def _attention(row: Branch) -> tuple:
    return (row.block_alert, row.unanswered + row.failed_sends, _known(row.recent_block_rate))


# What each chart ranks by when it shows only the top CHART_TOP clinics, and how the page says so.
CHART_RANKS = {
    "friends": (lambda r: r.figures.friends_now, _l("友だち数の多い順")),
    "block_rate": (lambda r: _known(r.figures.block_rate), _l("ブロック率の高い順")),
    "bookings": (
        lambda r: r.figures.total("bookings") + r.figures.total("redemptions"),
        _l("予約・クーポン利用の多い順"),
    ),
    "opens": (lambda r: (_known(r.open_rate), _known(r.click_rate)), _l("開封率の高い順")),
    "health": (_attention, _l("注意の必要な順（ブロック率の注意、未対応チャット＋送信失敗、直近7日のブロック率）")),
}


def _charted(rows: list[Branch], name: str, top: int | None) -> tuple[list[Branch], str]:
    """The rows a chart draws: all of them (in the table's order) when they fit, else the top ``top``
    by the chart's own measure, with the note that says so."""
    if top is None or len(rows) <= top:
        return rows, ""
    key, order = CHART_RANKS[name]
    note = _l(
        "%(order)sに上位%(top)d件を表示しています。全%(n)s件はCSVにあります。", order=order, top=top, n=f"{len(rows):,}"
    )
    return sorted(rows, key=key, reverse=True)[:top], str(note)


def comparison_charts(
    rows: list[Branch], *, with_organization: bool = False, top: int | None = None
) -> dict[str, Chart]:
    """Friends and growth, block rate, bookings and redemptions per clinic (with ``top``: at most
    that many clinics per chart, the CSVs are built without it)."""
    heading = _l("クリニック")

    def chart(name: str, title, series) -> Chart:
        shown, note = _charted(rows, name, top)
        return Chart(
            name,
            title,
            heading,
            [_name(r, with_organization) for r in shown],
            [Series(key, label, [value(r) for r in shown], color) for key, label, value, color in series],
            horizontal=True,
            note=note,
        )

    charts = [
        chart(
            "friends",
            _l("友だち数と増減"),
            [
                ("friends", _l("友だち数"), lambda r: r.figures.friends_now, "#06c755"),
                ("growth", _l("増減"), lambda r: r.figures.growth, "#3e63dd"),
            ],
        ),
        chart(
            "block_rate",
            _l("ブロック率"),
            [("block_rate", _l("ブロック率（%）"), lambda r: r.figures.block_rate, "#e5484d")],
        ),
        chart(
            "opens",
            _l("開封率・クリック率（LINEの統計）"),
            [
                ("open_rate", _l("開封率（%）"), lambda r: r.open_rate, "#06c755"),
                ("click_rate", _l("クリック率（%）"), lambda r: r.click_rate, "#3e63dd"),
            ],
        ),
        chart(
            "bookings",
            _l("予約・クーポン利用"),
            [
                ("bookings", _l("予約"), lambda r: r.figures.total("bookings"), "#3e63dd"),
                ("redemptions", _l("クーポン利用"), lambda r: r.figures.total("redemptions"), "#f76b15"),
            ],
        ),
    ]
    return {c.name: c for c in charts}


def health_chart(rows: list[Branch], *, top: int | None = None) -> Chart:
    """The agency's view of what needs attention at each client."""
    shown, note = _charted(rows, "health", top)
    return Chart(
        "health",
        _l("クライアントの状態"),
        _l("クリニック"),
        [_name(r, True) for r in shown],
        [
            Series("unanswered", _l("未対応チャット"), [r.unanswered for r in shown], "#f76b15"),
            Series("failed_sends", _l("送信失敗"), [r.failed_sends for r in shown], "#e5484d"),
            Series("included_left", _l("今月の無料メッセージ残り"), [r.included_left for r in shown], "#06c755"),
            Series(
                "recent_block_rate", _l("直近7日のブロック率（%）"), [r.recent_block_rate for r in shown], "#8e4ec6"
            ),
        ],
        horizontal=True,
        note=note,
    )


# The table's sortable columns: what each sorts by (ties keep the name order).
SORTS = {
    "name": lambda r: (r.clinic.organization_name, r.clinic.name),
    "friends": lambda r: r.figures.friends_now,
    "growth": lambda r: r.figures.growth,
    "block_rate": lambda r: _known(r.figures.block_rate),
    "open_rate": lambda r: _known(r.open_rate),
    "click_rate": lambda r: _known(r.click_rate),
    "bookings": lambda r: r.figures.total("bookings"),
    "unanswered": lambda r: r.unanswered,
    "included_left": lambda r: r.included_left,
    "failed_sends": lambda r: r.failed_sends,
    "alert": lambda r: (r.block_alert, _known(r.recent_block_rate)),
}


@dataclass
class Table:
    """One page of the clinics' table, sorted as asked."""

    rows: list[Branch]
    sort: str
    descending: bool
    page: int
    pages: int
    total: int

    @property
    def first(self) -> int:
        return (self.page - 1) * PAGE_SIZE + 1 if self.total else 0

    @property
    def last(self) -> int:
        return min(self.page * PAGE_SIZE, self.total)


def table(rows: list[Branch], sort: str | None, order: str | None, page: int | None) -> Table:
    """Rows sorted by a known column (else by name; numbers largest first unless asked) and cut to one page."""
    sort = sort if sort in SORTS else "name"
    descending = order == "desc" if order in ("asc", "desc") else sort != "name"
    ordered = sorted(rows, key=SORTS[sort], reverse=descending)  # stable: ties stay in name order
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    page = min(max(page or 1, 1), pages)
    return Table(ordered[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], sort, descending, page, pages, len(rows))


def organization_page(user, slug: str, days: int, *, for_csv: bool = False) -> dict | None:
    found = level_clinics(user, Organization, slug)
    if found is None:
        return None
    level, clinics = found
    rows = branches(clinics, days)
    charts = comparison_charts(rows, top=None if for_csv else CHART_TOP)
    return {"level": level, "rows": rows, "charts": charts, "block_rate": _overall_rate(rows)}


def agency_page(user, slug: str, days: int, *, for_csv: bool = False) -> dict | None:
    found = level_clinics(user, Agency, slug)
    if found is None:
        return None
    level, clinics = found
    rows = branches(clinics, days, health=True)
    top = None if for_csv else CHART_TOP
    charts = comparison_charts(rows, with_organization=True, top=top) | {"health": health_chart(rows, top=top)}
    return {"level": level, "rows": rows, "charts": charts, "block_rate": _overall_rate(rows)}


def _overall_rate(rows: list[Branch]) -> float | None:
    blocks = sum(r.figures.total("blocks") for r in rows)
    return rate(blocks, sum(r.figures.friends_at_start + r.figures.total("follows") for r in rows))
