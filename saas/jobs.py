"""RQ jobs and the worker process: every job runs inside an application context of its own."""

from __future__ import annotations

import functools
import logging
import signal
import time
from collections.abc import Callable

from flask import Flask, current_app, has_app_context

log = logging.getLogger(__name__)
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


# --- the worker process -------------------------------------------------------------------------

WORKER_MODES = ("fork", "simple")
RECONNECT_FIRST_WAIT, RECONNECT_MAX_WAIT = 0.5, 30.0
_STEADY_SECONDS = 60.0  # a worker that ran this long before losing Redis starts its back-off afresh
# RQ's scheduler (retries, deferrals, enqueue_at) runs inside one worker, under a lock that outlives
# a killed worker by a minute; the others try to take it over at every maintenance (RQ: 10 min).
WORKER_MAINTENANCE_SECONDS = 30


class _StopAware:
    """Remembers that SIGTERM/SIGINT asked the worker to stop (then the process really ends)."""

    stop_was_requested = False

    def request_stop(self, signum, frame):
        self.stop_was_requested = True
        super().request_stop(signum, frame)


def _worker_class(mode: str) -> type:
    from rq import SimpleWorker, Worker

    if mode not in WORKER_MODES:
        raise ValueError(f"unknown worker mode {mode!r}; modes are {', '.join(WORKER_MODES)}")
    base = SimpleWorker if mode == "simple" else Worker
    return type(f"Tsunagu{base.__name__}", (_StopAware, base), {})


def _stop_scheduler(worker) -> None:
    process = getattr(getattr(worker, "scheduler", None), "_process", None)
    if process is not None and process.is_alive():
        process.terminate()
        process.join(5)


def run_worker(
    app: Flask, queue_names: tuple[str, ...], *, mode: str = "fork", burst: bool = False, with_scheduler: bool = True
) -> None:
    """Serve ``queue_names`` (in that order) until stopped by a signal or, with ``burst``, until empty.

    ``fork`` runs each job in a child process (RQ's Worker: memory is returned after every job);
    ``simple`` runs jobs in this process (RQ's SimpleWorker: no fork, suited to many short jobs).
    When Redis goes away (restart, failover) the worker does not exit: it reconnects with
    exponential back-off, and the sweeper in ``saas.cron`` re-enqueues what Redis lost.
    """
    import redis
    from rq.exceptions import StopRequested

    from saas.queues import get_queue, get_redis

    use_worker_app(app)
    worker_class = _worker_class(mode)
    wait = RECONNECT_FIRST_WAIT
    while True:
        started, worker = time.monotonic(), None
        try:
            with app.app_context():
                connection = get_redis()
                queues = [get_queue(name) for name in queue_names]
            maintenance = app.config.get("WORKER_MAINTENANCE_SECONDS", WORKER_MAINTENANCE_SECONDS)
            worker = worker_class(queues, connection=connection, maintenance_interval=int(maintenance))
            worker.work(burst=burst, with_scheduler=with_scheduler)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            log.warning("worker lost Redis (%s)", error)
        except StopRequested:
            return
        finally:
            if worker is not None:
                _stop_scheduler(worker)
        if burst or (worker is not None and worker.stop_was_requested):
            return
        if time.monotonic() - started > _STEADY_SECONDS:
            wait = RECONNECT_FIRST_WAIT
        log.warning("worker reconnecting to Redis in %.1fs", wait)
        _sleep_unless_stopped(wait)
        wait = min(wait * 2, RECONNECT_MAX_WAIT)


def _sleep_unless_stopped(seconds: float) -> None:
    """Back-off between reconnections; SIGTERM/SIGINT during it end the process at once."""

    def stop(signum, frame):
        raise SystemExit(0)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    time.sleep(seconds)


def run_cron(app: Flask, module: str = "saas.cron") -> None:
    """RQ's cron scheduler for the periodic jobs in ``module``, reconnecting when Redis restarts."""
    import redis
    from rq.cron import CronScheduler

    from saas.queues import get_redis

    wait = RECONNECT_FIRST_WAIT
    while True:
        started = time.monotonic()
        try:
            with app.app_context():
                scheduler = CronScheduler(connection=get_redis())
            scheduler.load_config_from_file(module)
            scheduler.start()
            return  # stopped on request (SIGTERM / Ctrl+C)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            log.warning("cron lost Redis (%s)", error)
        if time.monotonic() - started > _STEADY_SECONDS:
            wait = RECONNECT_FIRST_WAIT
        _sleep_unless_stopped(wait)
        wait = min(wait * 2, RECONNECT_MAX_WAIT)
