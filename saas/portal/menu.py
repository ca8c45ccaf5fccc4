"""The clinic sidebar menu. Capabilities add their pages with ``register``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app, url_for
from flask_babel import lazy_gettext as _l

from saas.tenancy.access import can


@dataclass(frozen=True)
class MenuItem:
    endpoint: str
    label: str
    icon: str
    permission: str
    order: int
    badge: Callable | None = None  # badge(clinic) -> int shown beside the label (0: none)


_ITEMS: dict[str, MenuItem] = {}

# The sidebar is grouped by the order a capability registers with: (first order, heading).
SECTIONS = (
    (0, None),
    (10, _l("患者さん対応")),
    (20, _l("配信")),
    (30, _l("運用")),
    (60, _l("設定・管理")),
)


def section_of(order: int):
    """The sidebar heading an item of this order sits under."""
    return [heading for start, heading in SECTIONS if order >= start][-1]


def register(
    endpoint: str, label, icon: str, permission: str = "clinic.view", order: int = 50, badge: Callable | None = None
) -> None:
    _ITEMS[endpoint] = MenuItem(endpoint, label, icon, permission, order, badge)


def clinic_menu(clinic) -> list[dict]:
    """The menu entries this user may open at this clinic, in order."""
    entries = []
    for item in sorted(_ITEMS.values(), key=lambda i: i.order):
        if item.endpoint in current_app.view_functions and can(item.permission):
            entries.append(
                {
                    "endpoint": item.endpoint,
                    "label": item.label,
                    "icon": item.icon,
                    "url": url_for(item.endpoint, clinic=clinic.slug),
                    "badge": item.badge(clinic) if item.badge else 0,
                    "section": section_of(item.order),
                }
            )
    return entries


register("portal.clinic_dashboard", _l("ダッシュボード"), "◉", order=0)
