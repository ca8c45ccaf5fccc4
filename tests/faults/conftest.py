"""Fault-suite fixtures: a private Redis server, and worker processes configured like the tests' app."""

from __future__ import annotations

import contextlib
import subprocess

import pytest

from tests.faults.processes import CronProcess, RedisServer, WorkerProcess

# Short timings for the worker and cron processes (production: 30 s stale, 15 s sweep).
FAST_HEALING = {
    "DELIVERY_STALE_SECONDS": "3",
    "DELIVERY_SWEEP_SECONDS": "1",
    "DELIVERY_RETRY_BASE_SECONDS": "0.05",
    "DELIVERY_RETRY_CAP_SECONDS": "1",
}


@pytest.fixture
def private_redis(app, tmp_path):
    """The app's Redis swapped for a redis-server of this test's own (which it may restart)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    saved = app.config["REDIS_URL"], app.extensions.pop("tsunagu_redis", None)
    app.config["REDIS_URL"] = server.url
    yield server
    app.extensions.pop("tsunagu_redis", None)
    app.config["REDIS_URL"], connection = saved
    if connection is not None:
        app.extensions["tsunagu_redis"] = connection
    server.stop()


@pytest.fixture
def worker_env(app, private_redis, line_sandbox, tmp_path) -> dict:
    """Environment for `flask worker` processes: the tests' database, Redis, LINE host and secret."""
    return FAST_HEALING | {
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg://", "postgresql://"),
        "REDIS_URL": private_redis.url,
        "SECRET_KEY": app.config["SECRET_KEY"],
        "SANDBOX_ENABLED": "1",  # the tests' development secrets: production refuses to start without real ones
        "LINE_API_BASE": app.config.get("LINE_API_BASE", ""),
        "TSUNAGU_INSTANCE_DIR": str(tmp_path / "instance"),
    }


@pytest.fixture
def workers(worker_env):
    """Start worker processes with ``workers(queues=..., mode=...)``; all are stopped after the test."""
    started: list[WorkerProcess] = []

    def start(cron: bool = False, env: dict | None = None, **options) -> WorkerProcess:
        environment = worker_env | (env or {})
        process = CronProcess(environment) if cron else WorkerProcess(environment, **options)
        started.append(process)
        return process

    yield start
    for process in started:
        with contextlib.suppress(subprocess.TimeoutExpired, ProcessLookupError):
            process.kill()  # every one, even when an earlier one would not die
