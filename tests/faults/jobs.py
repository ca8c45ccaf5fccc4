"""Tiny jobs the fault suite runs in real worker processes."""

from __future__ import annotations

from saas.jobs import job
from saas.queues import get_redis

DONE_KEY = "tsunagu:test:done"


@job
def record(label: str) -> str:
    """Leave ``label`` in a Redis list the test reads."""
    get_redis().rpush(DONE_KEY, label)
    return label
