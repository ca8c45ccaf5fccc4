"""「分析」: the clinic analytics page, the organization and agency pages, and their CSV exports.

Every clinic route needs ``analytics.view`` (the analyst role has it; viewers and responders do
not); the organization and agency pages show only the clinics where the viewer holds it.
Figures come from the roll-ups only; no patient message text is ever read here.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy.orm import Session

from saas.analytics import attribution, delivery_report, groups, marks, reports, timing
from saas.analytics.models import MAX_ATTRIBUTION_DAYS
from saas.audit.services import record
from saas.common import parse_id
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.portal import menu
from saas.tenancy.access import can, current_clinic, require, sees_delivery_titles

marks.install(Session)  # roll-ups follow what is stored anywhere
bp = Blueprint("analytics", __name__)
TIMING_CHARTS = {"click_times": "clicks", "open_times": "opens"}
LEVEL_PAGES = {"organizations": groups.organization_page, "agencies": groups.agency_page}
_BRANCH_COLUMNS = (
    ("name", _l("クリニック"), False),
    ("friends", _l("友だち数"), True),
    ("growth", _l("増減"), True),
    ("block_rate", _l("ブロック率"), True),
    ("open_rate", _l("開封率"), True),
    ("click_rate", _l("クリック率"), True),
    ("bookings", _l("予約"), True),
)
LEVEL_SORTS = {  # the table's columns: sort key, heading, numeric
    "organizations": _BRANCH_COLUMNS,
    "agencies": (
        *_BRANCH_COLUMNS,
        ("unanswered", _l("未対応チャット"), True),
        ("included_left", _l("今月の無料メッセージ残り"), True),
        ("failed_sends", _l("送信失敗"), True),
        ("alert", _l("注意"), False),
    ),
}


@bp.app_context_processor
def analytics_levels():
    """Template helpers: the organizations and agencies whose analytics the user may open, and the
    composer's suggested send time (read only when a template asks)."""
    return {
        "analysed_levels": lambda: groups.analysed_levels(current_user) if current_user.is_authenticated else [],
        "suggested_send_time": lambda: timing.suggest(timing.send_slots(current_clinic().id)).text,
    }


def csv_response(text: str, filename: str) -> Response:
    """A CSV download Excel opens in Japanese (``text`` from ``Chart.csv``: UTF-8 with BOM)."""
    return Response(
        text.encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


def _days() -> int:
    return reports.period_days(request.args.get("days"))


@bp.get("/c/<clinic>/analytics/")
@login_required
@require("analytics.view")
def index():
    """Friends, blocks, sending, conversions and sources of the clinic over the chosen period."""
    days = _days()
    figures, ranks, charts = reports.clinic_charts(current_clinic().id, days, sees_delivery_titles())
    return render_template(
        "analytics/index.html",
        timing=timing.timing(current_clinic().id),
        timing_days=timing.TIMING_DAYS,
        min_sends=timing.MIN_SENDS,
        heat_levels=timing.heat_levels,
        days=days,
        periods=reports.PERIODS,
        figures=figures,
        ranks=ranks,
        charts=charts,
        window_days=attribution.window_days(current_clinic().id),
        max_window_days=MAX_ATTRIBUTION_DAYS,
    )


@bp.post("/c/<clinic>/analytics/settings")
@login_required
@require("analytics.view")
def save_settings():
    """Administrators set how many days after a message a conversion still counts for it."""
    if not can("clinic.settings"):
        abort(403)
    days = request.form.get("attribution_days", type=parse_id)
    try:
        attribution.set_window_days(current_clinic().id, days or 0)
    except ValueError:
        flash(_("日数は1〜%(n)d日で入力してください。", n=MAX_ATTRIBUTION_DAYS), "danger")
        return redirect(url_for(".index"))
    record("analytics.settings.update", target_type="clinic", target_id=current_clinic().id, details={"days": days})
    db.session.commit()
    flash(_("コンバージョンの計測期間を%(n)d日にしました。これから起きる予約・利用に使います。", n=days), "success")
    return redirect(url_for(".index"))


@bp.get("/c/<clinic>/analytics/<name>.csv")
@login_required
@require("analytics.view")
def chart_csv(name: str):
    """One chart's numbers as CSV, for the same period as the page."""
    days = _days()
    if name in TIMING_CHARTS:
        found = timing.timing(current_clinic().id)[TIMING_CHARTS[name]]
        return csv_response(found.csv(), f"{current_clinic().slug}-{name}-{timing.TIMING_DAYS}d.csv")
    chart = reports.clinic_charts(current_clinic().id, days, sees_delivery_titles())[2].get(name)
    if chart is None:
        abort(404)
    return csv_response(chart.csv(), f"{current_clinic().slug}-{name}-{days}d.csv")


def _report_or_404(delivery_id: int) -> delivery_report.DeliveryReport:
    return delivery_report.report(db.get_or_404(Delivery, delivery_id))  # another clinic's delivery: 404


@bp.get("/c/<clinic>/analytics/deliveries/<int:delivery_id>/")
@login_required
@require("analytics.view")
def delivery(delivery_id: int):
    """One delivery's reach, opens, clicks per link, blocks and conversions."""
    found = _report_or_404(delivery_id)
    return render_template("analytics/delivery.html", report=found, charts=found.charts())


@bp.get("/c/<clinic>/analytics/deliveries/<int:delivery_id>/report.csv")
@login_required
@require("analytics.view")
def delivery_report_csv(delivery_id: int):
    """Every number of the delivery report as CSV."""
    return csv_response(_report_or_404(delivery_id).csv(), f"delivery-{delivery_id}-report.csv")


@bp.get("/c/<clinic>/analytics/deliveries/<int:delivery_id>/<name>.csv")
@login_required
@require("analytics.view")
def delivery_csv(delivery_id: int, name: str):
    """One chart of the delivery report as CSV (funnel, links, conversions)."""
    chart = _report_or_404(delivery_id).charts().get(name)
    if chart is None:
        abort(404)
    return csv_response(chart.csv(), f"delivery-{delivery_id}-{name}.csv")


def _level_page(kind: str, slug: str, *, for_csv: bool = False) -> dict:
    page = LEVEL_PAGES[kind](current_user, slug, _days(), for_csv=for_csv) if kind in LEVEL_PAGES else None
    if page is None:
        abort(404)  # another organization's or agency's figures are not even acknowledged
    return page


@bp.get("/analytics/<kind>/<slug>/")
@login_required
def level(kind: str, slug: str):
    """An organization's branches compared, or an agency's clients with their health: charts of
    the top clinics and the table a page at a time, sortable; the CSVs have every clinic."""
    page = _level_page(kind, slug)
    args = request.args
    return render_template(
        "analytics/level.html",
        kind=kind,
        days=_days(),
        table=groups.table(page["rows"], args.get("sort"), args.get("order"), args.get("page", type=int)),
        sort_columns=LEVEL_SORTS[kind],
        periods=reports.PERIODS,
        alert_rate=groups.ALERT_BLOCK_RATE,
        alert_blocks=groups.ALERT_MIN_BLOCKS,
        **page,
    )


@bp.get("/analytics/<kind>/<slug>/<name>.csv")
@login_required
def level_csv(kind: str, slug: str, name: str):
    """One chart of the organization or agency page as CSV."""
    chart = _level_page(kind, slug, for_csv=True)["charts"].get(name)
    if chart is None:
        abort(404)
    return csv_response(chart.csv(), f"{slug}-{name}-{_days()}d.csv")


menu.register("analytics.index", _l("分析"), "↗", permission="analytics.view", order=26)
