"""The portal shell: the overview of every clinic a user may see, and each clinic's dashboard."""

from __future__ import annotations

from flask import Blueprint, g, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required

from saas.auth.redirects import local_target
from saas.auth.roles import ROLE_LABELS
from saas.common import to_local
from saas.portal import dashboard, stats
from saas.portal.menu import clinic_menu
from saas.tenancy import services
from saas.tenancy.access import can, current_clinic, require

bp = Blueprint("portal", __name__)


@bp.app_context_processor
def navigation():
    if not current_user.is_authenticated:
        return {}
    return {
        "nav": services.sidebar(current_user, g.get("clinic")),
        "role_labels": ROLE_LABELS,
        "clinic_menu": clinic_menu,
    }


@bp.app_template_filter("japan_time")
def japan_time(moment, fmt: str = "%Y/%m/%d %H:%M") -> str:
    """A stored (naive UTC) time shown as Japan time."""
    return to_local(moment).strftime(fmt) if moment else ""


@bp.get("/")
@login_required
def home():
    search = request.args.get("q", "").strip()
    groups = services.navigation_tree(current_user, search)
    clinics = [clinic for group in groups for clinic in group["clinics"]]
    if len(clinics) == 1:
        return redirect(url_for("portal.clinic_dashboard", clinic=clinics[0].slug))
    return render_template("portal/home.html", groups=groups, search=search, summaries=dashboard.summaries(clinics))


@bp.get("/c/<clinic>/")
@login_required
@require("clinic.view")
def clinic_dashboard():
    clinic = current_clinic()
    return render_template(
        "portal/dashboard.html",
        summary=dashboard.summaries([clinic])[clinic.id],
        roles=sorted(services.roles_at(current_user, clinic)),
        friend_chart=stats.friend_chart(),
        message_chart=stats.message_chart(),
        deliveries=stats.latest_deliveries() if can("messages.send") else [],
    )


@bp.get("/switch")
@login_required
def switch_clinic():
    slug = request.args.get("clinic", "")
    if slug and services.get_visible_clinic(current_user, slug):
        return redirect(url_for("portal.clinic_dashboard", clinic=slug))
    return redirect(url_for("portal.home"))


@bp.get("/language/<code>")
def set_language(code: str):
    if code in ("ja", "en"):
        session["lang"] = code
    return redirect(local_target(request.referrer) or url_for("portal.home"))  # never to another site
