"""The clinic's plan and message quota page (プラン・通数)."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.portal import dashboard, menu
from saas.quota.usage import daily_usage, usage, used_this_month
from saas.tenancy.access import current_clinic, require

bp = Blueprint("quota", __name__)


@bp.get("/c/<clinic>/quota")
@login_required
@require("clinic.view")
def overview():
    clinic = current_clinic()
    days = daily_usage(clinic.id)
    return render_template(
        "quota/overview.html",
        usage=usage(clinic.id),
        chart={"labels": [_("%(day)s日", day=d.day) for d, _count in days], "counts": [count for _day, count in days]},
    )


menu.register("quota.overview", _l("通数・プラン"), "▤", "clinic.view", order=60)
dashboard.register("quota_used", _l("今月の配信通数"), used_this_month)
