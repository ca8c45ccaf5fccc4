"""Figures for the dashboards. Capabilities add their own counters through ``register``."""

from __future__ import annotations

from collections.abc import Callable

# name -> function(clinic_ids) -> {clinic_id: value}; registered by capabilities at import.
_COUNTERS: dict[str, tuple[str, Callable[[list[int]], dict[int, int]]]] = {}


def register(name: str, label: str, counter: Callable[[list[int]], dict[int, int]]) -> None:
    """Add a dashboard figure, computed for many clinics in one query."""
    _COUNTERS[name] = (label, counter)


def summaries(clinics: list) -> dict[int, dict]:
    """Per clinic: its LINE connection state and every registered figure."""
    ids = [clinic.id for clinic in clinics]
    figures = {name: (label, counter(ids)) for name, (label, counter) in _COUNTERS.items()}
    return {
        clinic.id: {
            "clinic": clinic,
            "line_connected": clinic.line_connected,
            "figures": [
                {"name": name, "label": label, "value": values.get(clinic.id, 0)}
                for name, (label, values) in figures.items()
            ],
        }
        for clinic in clinics
    }
