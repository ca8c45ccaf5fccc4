"""「分析」: the clinic analytics page, its CSV exports, and the analytics settings.

Every route needs ``analytics.view`` (the analyst role has it; viewers and responders do not).
Figures come from the roll-ups only; no patient message text is ever read here.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from sqlalchemy.orm import Session

from saas.analytics import marks, reports
from saas.portal import menu
from saas.tenancy.access import current_clinic, require

marks.install(Session)  # roll-ups follow what is stored anywhere
bp = Blueprint("analytics", __name__, url_prefix="/c/<clinic>/analytics")


def csv_response(text: str, filename: str) -> Response:
    """A CSV download Excel opens in Japanese (UTF-8 with BOM)."""
    return Response(
        ("\ufeff" + text).encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@bp.get("/")
@login_required
@require("analytics.view")
def index():
    """Friends, blocks, sending, conversions and sources of the clinic over the chosen period."""
    days = reports.period_days(request.args.get("days"))
    figures, ranks, charts = reports.clinic_charts(current_clinic().id, days)
    return render_template(
        "analytics/index.html", days=days, periods=reports.PERIODS, figures=figures, ranks=ranks, charts=charts
    )


@bp.get("/<name>.csv")
@login_required
@require("analytics.view")
def chart_csv(name: str):
    """One chart's numbers as CSV, for the same period as the page."""
    days = reports.period_days(request.args.get("days"))
    chart = reports.clinic_charts(current_clinic().id, days)[2].get(name)
    if chart is None:
        abort(404)
    return csv_response(chart.csv(), f"{current_clinic().slug}-{name}-{days}d.csv")


menu.register("analytics.index", _l("分析"), "📈", permission="analytics.view", order=26)
