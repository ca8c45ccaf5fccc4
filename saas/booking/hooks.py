"""Extension point of bookings: other capabilities (step delivery) react to a booking made or kept."""

from __future__ import annotations

from collections.abc import Callable

MADE, VISITED = "made", "visited"
_observers: list[Callable[..., None]] = []


def register_booking_observer(observer: Callable[..., None]) -> Callable[..., None]:
    """Decorator: ``observer(booking, what)`` with ``what`` MADE or VISITED, after the commit. Idempotent."""
    if observer not in _observers:
        _observers.append(observer)
    return observer


def notify(booking, what: str) -> None:
    for observer in _observers:
        observer(booking, what)
