"""The coupon list's chart: tickets issued and coupons used per day (Japan days, last 30)."""

from __future__ import annotations

from datetime import datetime

from saas.common import utcnow
from saas.coupons.models import CouponRedemption, CouponTicket
from saas.portal.stats import CHART_DAYS, _days, _offset, _per_day  # the dashboard's day grouping


def uses_per_day(*, now: datetime | None = None, days: int = CHART_DAYS) -> dict:
    """Daily tickets issued and redemptions of the scoped clinic's coupons."""
    now = now or utcnow()
    offset = _offset(now)
    labels, since = _days(now, days)
    issued = _per_day(CouponTicket.issued_at, since, offset)
    used = _per_day(CouponRedemption.redeemed_at, since, offset)
    return {
        "labels": [d.strftime("%m/%d") for d in labels],
        "issued": [issued.get(d, 0) for d in labels],
        "used": [used.get(d, 0) for d in labels],
        "used_total": sum(used.values()),
    }
