"""Preset layouts and the clinic features an area can be bound to."""

from __future__ import annotations

from dataclasses import dataclass

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
    "card": ("ショップカード", {"type": "uri", "uri": "{{clinic.card_url}}"}),
}
DEFAULT_ORDER = ["booking", "hours", "access", "faq", "online", "recruit", "card"]

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


# The editor places areas on a grid of cells; every preset's cells are whole cells of it.
GRID_COLUMNS = 6
GRID_ROWS = {"full": 4, "half": 2}


@dataclass(frozen=True)
class Cells:
    """An area as grid cells: first column/row (0-based) and how many it spans."""

    column: int
    row: int
    columns: int = 1
    rows: int = 1


def cell_bounds(size: str, cells: Cells) -> dict:
    """The pixel rectangle of a block of grid cells (same rounding as :func:`grid`)."""
    width, height = SIZES[size]
    rows = GRID_ROWS[size]
    x, y = width * cells.column // GRID_COLUMNS, height * cells.row // rows
    right = width * (cells.column + cells.columns) // GRID_COLUMNS
    bottom = height * (cells.row + cells.rows) // rows
    return {"x": x, "y": y, "width": right - x, "height": bottom - y}


def cells_of(size: str, area: dict) -> Cells:
    """The grid cells nearest to an area's rectangle (areas from presets fit exactly)."""
    width, height = SIZES[size]
    rows = GRID_ROWS[size]
    column = min(round(area.get("x", 0) * GRID_COLUMNS / width), GRID_COLUMNS - 1)
    row = min(round(area.get("y", 0) * rows / height), rows - 1)
    columns = max(round((area.get("x", 0) + area.get("width", 0)) * GRID_COLUMNS / width) - column, 1)
    spans = max(round((area.get("y", 0) + area.get("height", 0)) * rows / height) - row, 1)
    return Cells(column, row, min(columns, GRID_COLUMNS - column), min(spans, rows - row))


def feature_of(area: dict) -> str:
    """The feature an area is bound to ('' for a custom action)."""
    if area.get("feature") in FEATURES:
        return area["feature"]
    for key, (_label, action) in FEATURES.items():
        if area.get("action") == action:
            return key
    return ""


def relayout(preset: str, areas: list[dict]) -> tuple[str, list[dict]]:
    """The areas moved onto a preset's cells in order; extra areas dropped, missing ones
    added with the features not used yet."""
    size, fresh = preset_areas(preset)
    used = {feature_of(area) for area in areas}
    spare = [key for key in DEFAULT_ORDER if key not in used]
    result = []
    for index, cell in enumerate(fresh):
        if index < len(areas):
            result.append({**areas[index], **{k: cell[k] for k in ("x", "y", "width", "height")}})
        else:
            key = spare.pop(0) if spare else cell["feature"]
            label, action = FEATURES[key]
            result.append(
                {
                    **{k: cell[k] for k in ("x", "y", "width", "height")},
                    "label": label,
                    "feature": key,
                    "action": dict(action),
                }
            )
    return size, result
