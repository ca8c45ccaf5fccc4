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

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import contains_eager

from saas.analytics.reports import Chart, PeriodTotals, Series, rate, totals_for
from saas.auth.roles import Scope, allows
from saas.extensions import db
from saas.inbox.services import unanswered_counts
from saas.quota.usage import included_left_this_month
from saas.tenancy.models import Agency, Clinic, Organization

ALERT_DAYS = 7  # the block-rate alert looks at the last week
ALERT_BLOCK_RATE = 2.0  # % of the friends there were to lose
ALERT_MIN_BLOCKS = 3  # a small clinic's one or two blocks are not an alert


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


def level_clinics(user, model, slug: str) -> tuple[object, list[Clinic]] | None:
    """The organization or agency and its clinics, for a user who may analyse it; None: a 404."""
    level = db.session.scalar(sa.select(model).where(model.slug == slug))
    if level is None or not may_analyse(user, level):
        return None
    statement = (
        sa.select(Clinic)
        .join(Clinic.organization)
        .options(contains_eager(Clinic.organization))
        .order_by(Organization.name, Clinic.name)
    )
    if model is Organization:
        statement = statement.where(Clinic.organization_id == level.id)
    else:
        statement = statement.where(Organization.agency_id == level.id)
    clinics = list(db.session.scalars(statement))
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
    clinic: Clinic
    figures: PeriodTotals
    recent: PeriodTotals | None = None  # the last ALERT_DAYS, for the block-rate alert
    unanswered: int = 0
    included_left: int = 0

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


def branches(clinics: list[Clinic], days: int, *, health: bool = False) -> list[Branch]:
    """Each clinic's period totals, and with ``health`` its chats, quota and last week's blocks."""
    ids = [c.id for c in clinics]
    period, recent = totals_for(ids, days, ALERT_DAYS)
    rows = [Branch(c, period[c.id], recent[c.id]) for c in clinics]
    if health:
        unanswered, left = unanswered_counts(ids), included_left_this_month(ids)
        for row in rows:
            row.unanswered, row.included_left = unanswered.get(row.clinic.id, 0), left.get(row.clinic.id, 0)
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
