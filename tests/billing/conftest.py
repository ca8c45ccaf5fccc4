"""Billing tests write mail to a folder of their own (the dunning warnings are read from it)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def outbox(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_OUTBOX_DIR", str(tmp_path / "outbox"))
    return tmp_path / "outbox"
