"""Fixtures for conversation tests."""

from __future__ import annotations

import pytest


@pytest.fixture
def first_responders():
    """Put test responders in front of the product's own for the duration of a test."""
    added: list[tuple[list, object]] = []

    def put_first(registry: list, responder) -> None:
        registry.insert(0, responder)
        added.append((registry, responder))

    yield put_first
    for registry, responder in added:
        registry.remove(responder)
