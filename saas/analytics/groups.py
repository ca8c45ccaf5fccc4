"""The organization page (branches compared) and the agency page (clients and their health).

Both show only the clinics the viewer's memberships cover with ``analytics.view``; a level with
none of them is a 404. Figures come from the roll-ups and the capabilities' own counters
(unanswered chats, this month's included messages left), each read for all clinics at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from saas.analytics.reports import Chart, ClinicFigures, Series, figures_for, rate
from saas.auth.roles import allows
from saas.extensions import db
from saas.inbox.services import unanswered_counts
from saas.quota.usage import included_left_this_month
from saas.tenancy.models import Agency, Clinic, Organization
from saas.tenancy.services import roles_at, visible_clinics

ALERT_DAYS = 7  # the block-rate alert looks at the last week
ALERT_BLOCK_RATE = 2.0  # % of the friends there were to lose
ALERT_MIN_BLOCKS = 3  # a small clinic's one or two blocks are not an alert


def level_clinics(user, model, slug: str) -> tuple[object, list[Clinic]] | None:
    """The organization or agency and its clinics the user may analyse; None: nothing to show (404)."""
    level = db.session.scalar(sa.select(model).where(model.slug == slug))
    if level is None:
        return None
    statement = sa.select(Clinic).join(Organization).order_by(Organization.name, Clinic.name)
    if model is Organization:
        statement = statement.where(Clinic.organization_id == level.id)
    else:
        statement = statement.where(Organization.agency_id == level.id)
    clinics = [c for c in db.session.scalars(statement) if allows(roles_at(user, c), "analytics.view")]
    return (level, clinics) if clinics else None


def analysed_levels(user) -> list[tuple[str, object]]:
    """("organization" | "agency", level) for every level above a clinic the user analyses."""
    found: dict[tuple[str, int], object] = {}
    for clinic in visible_clinics(user):
        if allows(roles_at(user, clinic), "analytics.view"):
            organization = clinic.organization
            found.setdefault(("organization", organization.id), organization)
            if organization.agency is not None:
                found.setdefault(("agency", organization.agency.id), organization.agency)
    return sorted(((kind, level) for (kind, _id), level in found.items()), key=lambda p: (p[0] != "agency", p[1].name))


@dataclass
class Branch:
    clinic: Clinic
    figures: ClinicFigures
    unanswered: int = 0
    included_left: int = 0
    recent_block_rate: float | None = None
    recent_blocks: int = 0

    @property
    def failed_sends(self) -> int:
        return self.figures.total("failed_sends")

    @property
    def block_alert(self) -> bool:
        rate_now = self.recent_block_rate or 0.0
        return rate_now >= ALERT_BLOCK_RATE and self.recent_blocks >= ALERT_MIN_BLOCKS


def branches(clinics: list[Clinic], days: int, *, health: bool = False) -> list[Branch]:
    """Each clinic's period figures, and with ``health`` its chats, quota and last week's blocks."""
    ids = [c.id for c in clinics]
    figures = figures_for(ids, days)
    rows = [Branch(c, figures[c.id]) for c in clinics]
    if health:
        unanswered, left, week = unanswered_counts(ids), included_left_this_month(ids), figures_for(ids, ALERT_DAYS)
        for row in rows:
            row.unanswered, row.included_left = unanswered.get(row.clinic.id, 0), left.get(row.clinic.id, 0)
            row.recent_block_rate, row.recent_blocks = (
                week[row.clinic.id].block_rate,
                week[row.clinic.id].total("blocks"),
            )
    return rows


def _name(row: Branch, with_organization: bool) -> str:
    return f"{row.clinic.organization.name} / {row.clinic.name}" if with_organization else row.clinic.name


def comparison_charts(rows: list[Branch], *, with_organization: bool = False) -> dict[str, Chart]:
    """Friends and growth, block rate, bookings and redemptions per clinic."""
    labels, heading = [_name(r, with_organization) for r in rows], _l("クリニック")
    charts = [
        Chart(
            "friends",
            _l("友だち数と増減"),
            heading,
            labels,
            [
                Series("friends", _l("友だち数"), [r.figures.friends_now for r in rows], "#06c755"),
                Series("growth", _l("増減"), [r.figures.growth for r in rows], "#3e63dd"),
            ],
            horizontal=True,
        ),
        Chart(
            "block_rate",
            _l("ブロック率"),
            heading,
            labels,
            [Series("block_rate", _l("ブロック率（%）"), [r.figures.block_rate for r in rows], "#e5484d")],
            horizontal=True,
        ),
        Chart(
            "bookings",
            _l("予約・クーポン利用"),
            heading,
            labels,
            [
                Series("bookings", _l("予約"), [r.figures.total("bookings") for r in rows], "#3e63dd"),
                Series("redemptions", _l("クーポン利用"), [r.figures.total("redemptions") for r in rows], "#f76b15"),
            ],
            horizontal=True,
        ),
    ]
    return {chart.name: chart for chart in charts}


def health_chart(rows: list[Branch]) -> Chart:
    """The agency's view of what needs attention at each client."""
    return Chart(
        "health",
        _l("クライアントの状態"),
        _l("クリニック"),
        [_name(r, True) for r in rows],
        [
            Series("unanswered", _l("未対応チャット"), [r.unanswered for r in rows], "#f76b15"),
            Series("failed_sends", _l("送信失敗"), [r.failed_sends for r in rows], "#e5484d"),
            Series("included_left", _l("今月の無料メッセージ残り"), [r.included_left for r in rows], "#06c755"),
            Series("recent_block_rate", _l("直近7日のブロック率（%）"), [r.recent_block_rate for r in rows], "#8e4ec6"),
        ],
        horizontal=True,
    )


def organization_page(user, slug: str, days: int) -> dict | None:
    found = level_clinics(user, Organization, slug)
    if found is None:
        return None
    level, clinics = found
    rows = branches(clinics, days)
    return {"level": level, "rows": rows, "charts": comparison_charts(rows), "block_rate": _overall_rate(rows)}


def agency_page(user, slug: str, days: int) -> dict | None:
    found = level_clinics(user, Agency, slug)
    if found is None:
        return None
    level, clinics = found
    rows = branches(clinics, days, health=True)
    charts = comparison_charts(rows, with_organization=True) | {"health": health_chart(rows)}
    return {"level": level, "rows": rows, "charts": charts, "block_rate": _overall_rate(rows)}


def _overall_rate(rows: list[Branch]) -> float | None:
    blocks = sum(r.figures.total("blocks") for r in rows)
    return rate(blocks, sum(r.figures.friends_at_start + r.figures.total("follows") for r in rows))
