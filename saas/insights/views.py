"""Template helpers for the dashboard and the delivery history (no pages of its own: a delivery's
LINE figures are on its report, :mod:`saas.analytics.delivery_report`)."""

from __future__ import annotations

from flask import Blueprint

from saas.insights import events, services  # noqa: F401  (events registers the unfollow observer)

bp = Blueprint("insights", __name__)


@bp.app_template_global("block_rate_warning")
def block_rate_warning() -> services.BlockWarning | None:
    """The current clinic's block-rate warning (two indexed reads), for the dashboard and history."""
    return services.block_warning()
