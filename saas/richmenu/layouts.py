"""Preset layouts and the clinic features an area can be bound to."""

from __future__ import annotations

from saas.common import N_
from saas.richmenu.models import SIZES

# feature key → (label, default action). Bindings are resolved per clinic at deploy time.
FEATURES: dict[str, tuple[str, dict]] = {
    "booking": ("予約", {"type": "uri", "uri": "{{clinic.booking_url}}"}),
    "hours": ("診療時間", {"type": "message", "text": "診療時間"}),
    "access": ("アクセス", {"type": "uri", "uri": "{{clinic.access_url}}"}),
    "faq": ("よくある質問", {"type": "message", "text": "よくある質問"}),
    "online": ("オンライン診療", {"type": "uri", "uri": "{{organization.online_consultation_url}}"}),
    "recruit": ("採用情報", {"type": "uri", "uri": "{{organization.recruitment_url}}"}),
}
DEFAULT_ORDER = ["booking", "hours", "access", "faq", "online", "recruit"]

# preset key → (label, size, columns, rows)
PRESETS: dict[str, tuple[str, str, int, int]] = {
    "full6": (N_("大・6分割"), "full", 3, 2),
    "full4": (N_("大・4分割"), "full", 2, 2),
    "full3": (N_("大・3分割（縦）"), "full", 3, 1),
    "half3": (N_("小・3分割"), "half", 3, 1),
    "half2": (N_("小・2分割"), "half", 2, 1),
}


def grid(size: str, columns: int, rows: int) -> list[dict]:
    """Equal cells covering the whole menu (the last column/row takes the rounding rest)."""
    width, height = SIZES[size]
    cells = []
    for row in range(rows):
        for column in range(columns):
            x, y = width * column // columns, height * row // rows
            cells.append(
                {"x": x, "y": y, "width": width * (column + 1) // columns - x, "height": height * (row + 1) // rows - y}
            )
    return cells


def preset_areas(preset: str, features: list[str] | None = None) -> tuple[str, list[dict]]:
    """The size and areas of a preset, bound to features in the usual order."""
    _, size, columns, rows = PRESETS[preset]
    order = features or DEFAULT_ORDER
    areas = []
    for index, cell in enumerate(grid(size, columns, rows)):
        key = order[index % len(order)]
        label, action = FEATURES[key]
        areas.append({**cell, "label": label, "feature": key, "action": dict(action)})
    return size, areas
