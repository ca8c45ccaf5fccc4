"""The time step delivery runs on: the real clock, or a fixed one in tests and previews."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import datetime

from saas.common import utcnow

_fixed: list[datetime] = []


def now() -> datetime:
    """Naive UTC now (the innermost :func:`frozen` time while one is active)."""
    return _fixed[-1] if _fixed else utcnow()


@contextlib.contextmanager
def frozen(at: datetime) -> Iterator[datetime]:
    """Within the block, step delivery's now is ``at`` (naive UTC): starts, stops and ticks."""
    _fixed.append(at)
    try:
        yield at
    finally:
        _fixed.pop()
