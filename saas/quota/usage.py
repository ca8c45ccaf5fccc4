"""This month's usage for the portal and for warnings: count, limit, warning level, forecast."""

from __future__ import annotations

import calendar
import math
from dataclasses import dataclass
from datetime import date, datetime

import sqlalchemy as sa

from saas.extensions import db
from saas.quota.counter import japan_now, month_key
from saas.quota.models import ClinicPlan, LinePlan, MessageUsage, MessageUsageDay
from saas.quota.plans import DEFAULT_PLAN, EffectivePlan, get_plan, month_cost_yen, plan_for_clinic
from saas.tenancy.scoping import clinic_in, dialect_name

WARNING_LEVELS = ((100, "100"), (80, "80"))


@dataclass(frozen=True)
class Usage:
    """A clinic's billable messages this month against its plan."""

    month: str
    plan: EffectivePlan
    used: int
    limit: int | None  # hard limit; None when additional messages have no cap of ours
    percent: float  # of the plan's included (free) messages
    warning: str  # "none", "80" or "100"
    projected_used: int
    cost_so_far_yen: float
    projected_cost_yen: float
    line_reported: int | None

    @property
    def remaining(self) -> int | None:
        return None if self.limit is None else max(self.limit - self.used, 0)

    @property
    def free_messages(self) -> int:
        return self.plan.plan.free_messages


def warning_level(percent: float) -> str:
    """ "100" at or past the included messages, "80" from 80%, else "none"."""
    return next((level for threshold, level in WARNING_LEVELS if percent >= threshold), "none")


def project_month_total(used: int, today: date) -> int:
    """Linear forecast of the month's total from the count so far."""
    days_in_month = calendar.monthrange(today.year, today.month)[1]
    return math.ceil(used * days_in_month / today.day)


def usage(clinic_id: int, *, now: datetime | None = None) -> Usage:
    """This month's usage, warning level and projected cost (needs the clinic's tenant scope)."""
    moment = japan_now(now)
    month = month_key(moment)
    effective = plan_for_clinic(clinic_id)
    row = db.session.execute(  # one read of the month's row (durable_used and line_reported)
        sa.select(MessageUsage.used, MessageUsage.line_reported).filter_by(clinic_id=clinic_id, month=month)
    ).first()
    used, reported = (row.used or 0, row.line_reported) if row else (0, None)
    included = effective.plan.free_messages
    percent = round(100.0 * used / included, 1) if included else 100.0
    projected = project_month_total(used, moment.date())
    if effective.limit is not None:
        projected = min(projected, effective.limit)
    return Usage(
        month=month,
        plan=effective,
        used=used,
        limit=effective.limit,
        percent=percent,
        warning=warning_level(percent),
        projected_used=projected,
        cost_so_far_yen=month_cost_yen(effective.plan, used),
        projected_cost_yen=month_cost_yen(effective.plan, projected),
        line_reported=reported,
    )


def daily_usage(clinic_id: int, *, now: datetime | None = None) -> list[tuple[date, int]]:
    """(day, count) for every day of this month up to today, zeros included."""
    today = japan_now(now).date()
    first = today.replace(day=1)
    rows = db.session.execute(
        sa.select(MessageUsageDay.day, MessageUsageDay.used).filter(
            MessageUsageDay.clinic_id == clinic_id, MessageUsageDay.day >= first, MessageUsageDay.day <= today
        )
    ).all()
    counts = dict(rows)
    return [(first.replace(day=d), counts.get(first.replace(day=d), 0)) for d in range(1, today.day + 1)]


def used_this_month(clinic_ids: list[int]) -> dict[int, int]:
    """Dashboard figure: this month's count for many clinics in one query."""
    month = month_key(japan_now())
    rows = db.session.execute(
        sa.select(MessageUsage.clinic_id, MessageUsage.used).filter(
            clinic_in(MessageUsage.clinic_id, clinic_ids, dialect_name()), MessageUsage.month == month
        )
    ).all()
    return dict(rows)


def included_left_this_month(clinic_ids: list[int]) -> dict[int, int]:
    """Per clinic: the plan's included (free) messages not used yet this month, in three queries."""
    get_plan(DEFAULT_PLAN)  # loads the plan data on first use
    codes = dict(
        db.session.execute(
            sa.select(ClinicPlan.clinic_id, ClinicPlan.plan_code).where(
                clinic_in(ClinicPlan.clinic_id, clinic_ids, dialect_name())
            )
        ).all()
    )
    free = dict(db.session.execute(sa.select(LinePlan.code, LinePlan.free_messages)).all())
    used = used_this_month(clinic_ids)
    return {c: max(free.get(codes.get(c, DEFAULT_PLAN), 0) - used.get(c, 0), 0) for c in clinic_ids}
