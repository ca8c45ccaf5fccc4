"""Template helpers for the delivery pages and the dashboard (no pages of its own yet: the
analytics pages read :mod:`saas.insights.services`)."""

from __future__ import annotations

from flask import Blueprint

from saas.insights import events, services  # noqa: F401  (events registers the unfollow observer)

bp = Blueprint("insights", __name__)


@bp.app_template_global("delivery_insight")
def delivery_insight(delivery_id: int) -> services.DeliveryStats:
    """LINE's figures and the attributed blocks of a delivery, for its detail page."""
    return services.delivery_stats(delivery_id)


@bp.app_template_global("block_rate_warning")
def block_rate_warning() -> services.BlockWarning | None:
    """The current clinic's block-rate warning (two indexed reads), for the dashboard and history."""
    return services.block_warning()
