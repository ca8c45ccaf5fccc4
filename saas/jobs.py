"""Helpers for RQ jobs: every job runs inside an application context of its own."""

from __future__ import annotations

import functools
from collections.abc import Callable

from flask import Flask, current_app, has_app_context

_worker_app: Flask | None = None


def worker_app() -> Flask:
    """The app a worker process runs jobs in, created on first use (never at import)."""
    global _worker_app
    if _worker_app is None:
        from saas import create_app

        _worker_app = create_app()
    return _worker_app


def use_worker_app(app: Flask) -> None:
    """Make jobs run in ``app`` (the worker command and in-process test workers do this)."""
    global _worker_app
    _worker_app = app


def job(func: Callable) -> Callable:
    """Run the function in an app context of its own: a fresh session per job."""

    @functools.wraps(func)
    def run(*args, **kwargs):
        if _worker_app is not None:
            app = _worker_app
        elif has_app_context():
            app = current_app._get_current_object()
        else:
            app = worker_app()
        with app.app_context():
            return func(*args, **kwargs)

    return run
