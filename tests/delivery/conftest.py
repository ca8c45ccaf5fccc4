"""Fast back-off for pipeline tests (the behaviour is the same, the waits are shorter)."""

from __future__ import annotations

import pytest

FAST = {
    "DELIVERY_RETRY_BASE_SECONDS": 0.02,
    "DELIVERY_RETRY_CAP_SECONDS": 0.5,
    "DELIVERY_INLINE_WAIT_SECONDS": 1.0,
    "DELIVERY_MAX_ATTEMPTS": 10,
}


@pytest.fixture(autouse=True)
def fast_retries(app):
    before = {key: app.config.get(key) for key in FAST}
    app.config.update(FAST)
    yield
    for key, value in before.items():
        if value is None:
            app.config.pop(key, None)
        else:
            app.config[key] = value


@pytest.fixture
def sandbox_state(sandbox_server):
    """The sandbox's in-memory state, to count what every patient received without 10,000 calls."""
    return sandbox_server.app.extensions["line_sandbox"]
