"""Insight tests: LINE's statistics are asked at once (no first-sync delay) unless a test says."""

from __future__ import annotations

import pytest

from tests.delivery.conftest import fast_retries  # noqa: F401  (short send back-off here too)


@pytest.fixture(autouse=True)
def no_first_sync_delay(app):
    app.config["INSIGHT_FIRST_SYNC_MINUTES"] = 0
    yield
    app.config.pop("INSIGHT_FIRST_SYNC_MINUTES", None)
    app.config.pop("INSIGHT_UNITS_PER_MONTH", None)
