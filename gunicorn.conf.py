"""gunicorn settings of the ``web`` process (Procfile: ``gunicorn -c gunicorn.conf.py``).

The access log goes through a logger class that takes secrets (invitation and reset tokens,
webhook keys) out of URLs.

Threaded workers (gthread), not sync: a request mostly waits on Postgres and Redis, so each
process serves several at once while the GIL is free, a slow client (a webhook from far away)
does not hold a whole process, and connections are kept alive (sync workers close each one).
Processes: ``WEB_CONCURRENCY``, default one per core: the threads already overlap the waits,
and more processes than cores only contend for them (measured with webhook deliveries on 2
cores: 5 processes × 4 threads cost 2.5 ms of CPU per request, 2 × 4 1.6 ms and served twice as
many; gunicorn's "2 × cores + 1" is advice for sync workers). Threads per process:
``WEB_THREADS``, default 16: LINE's deliveries wait on the process's webhook writer, which stores
every delivery that arrived while it wrote the previous ones in one statement
(``saas/webhooks/ingest.py``), so more deliveries in flight make fewer, larger writes (2 × 4
threads: 254 deliveries/s at 2.69 ms CPU each, 2 × 16: 410–576/s at 1.7 ms, same code, load
12–15). Database connections: a portal page holds one per thread (SQLAlchemy's pool grows on
demand), webhook deliveries share the writer's one; Postgres sees at most processes × threads
(+ 1 writer each) per machine; size ``max_connections`` (or a PgBouncer) for every machine's
web and worker processes together.
Measured in ``tests/perf/webhook_ingest.py`` (see the README's benchmark table).
"""

import multiprocessing
import os

from saas.security.redaction import gunicorn_logger_class

bind = f"0.0.0.0:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count()))
worker_class = "gthread"
threads = int(os.environ.get("WEB_THREADS", "16"))
keepalive = 5  # seconds: connections from LINE and from a load balancer are reused
timeout = 30  # a request stuck this long is a bug: the worker is replaced
graceful_timeout = 20
max_requests = 20_000  # recycle workers now and then (slow leaks), staggered so they never all restart
max_requests_jitter = 2_000
# Off unless asked for (WEB_ACCESS_LOG="-" is stdout, or a file): a line per request was a tenth
# of a webhook delivery's CPU, and the load balancer in front keeps its own log.
accesslog = os.environ.get("WEB_ACCESS_LOG") or None
logger_class = gunicorn_logger_class()


def post_worker_init(worker):
    """The app is built: its objects leave the garbage collector's full passes (see settle_startup_heap)."""
    from saas.common import settle_startup_heap

    settle_startup_heap()


def worker_exit(server, worker):
    """Without REDIS_URL a worker starts an embedded Redis; it must not outlive the worker."""
    from saas.queues import stop_embedded_servers

    stop_embedded_servers()
