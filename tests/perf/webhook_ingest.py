"""Webhook-ingest benchmark: our queue-backed endpoint beside a naive in-request handler.

Run::

    python -m tests.perf.webhook_ingest                 # 1,000 events per mode, 32 concurrent
    python -m tests.perf.webhook_ingest --events 3000 --concurrency 64 --line-latency-ms 80

What it does, all on loopback with embedded defaults (a temporary SQLite database and the
embedded Redis, nothing from the environment's DATABASE_URL/REDIS_URL; ``--database-url``
points it at an empty Postgres database instead, which is what production runs):

1. starts the LINE sandbox under gunicorn (one process: its state is in memory), with an
   artificial latency per Messaging API call (``--line-latency-ms``, LINE's real round trip
   from Japan is tens of milliseconds);
2. starts the product under gunicorn (``--workers`` × ``--threads``), with one extra route
   mounted only here: ``/naive/line/<key>``, which does what a first draft would do inside
   the request: verify, fetch the profile from LINE, store the friend and the message, reply;
3. has the sandbox make N message events (real reply tokens), then fires them as signed
   webhook requests from a thread pool (``requests`` with keep-alive), one event per request,
   first at ``/webhooks/line/<key>`` (store + enqueue, the product) and then at the naive route;
4. prints events/s and p50/p99 latency per mode. LINE gives up on a webhook after 2 seconds.

Reading the figures: with SQLite, concurrent writers from several gunicorn processes queue
on SQLite's single write lock (its busy handler backs off in steps of up to 100 ms), which
shows in the queued mode's p99; one request alone takes a few milliseconds
(``--concurrency 1``). The naive mode pays at least two LINE round trips per event.

The product's queued jobs are not run here: ingest is what LINE waits for. Bounded: at most
``--events`` requests per mode, a 30 s timeout per request.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
CHANNEL_ID, SECRET, TOKEN = "1999000001", "b" * 32, "benchmark-token-" + "t" * 40


def benchmark_app():
    """The product app plus the naive in-request handler (gunicorn entry point for this run)."""
    from flask import abort, request

    from saas import create_app
    from saas.extensions import csrf, db
    from saas.tenancy.models import Clinic

    app = create_app()

    @app.post("/naive/line/<webhook_key>")
    @csrf.exempt
    def naive_webhook(webhook_key: str):
        from saas.webhooks.ingest import signature_valid

        clinic = db.session.scalar(db.select(Clinic).where(Clinic.webhook_key == webhook_key)) or abort(404)
        body = request.get_data()
        if not signature_valid(clinic.line_channel_secret, body, request.headers.get("x-line-signature")):
            abort(401)
        for event in json.loads(body)["events"]:
            _handle_inline(clinic, event)
        return "", 200

    return app


def _handle_inline(clinic, event: dict) -> None:
    """The naive way: every LINE call and write happens while LINE waits for our answer."""
    from saas.extensions import db
    from saas.friends import services
    from saas.line import client
    from saas.tenancy.scoping import tenant_scope

    with tenant_scope(clinic.id):
        friend, _ = services.get_or_create_friend(event["source"]["userId"])
        services.apply_profile(friend, client.get_profile(clinic, friend.line_user_id))
        db.session.flush()
        services.record_message(friend, "in", "text", event["message"]["text"])
        db.session.commit()
        client.reply(clinic, event["replyToken"], [{"type": "text", "text": "受け付けました"}])


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _gunicorn(target: str, port: int, workers: int, threads: int, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread", "--threads", str(threads)]
    command += ["-b", f"127.0.0.1:{port}", "--log-level", "warning", target]
    return subprocess.Popen(command, cwd=ROOT, env=env)


def _wait_until_up(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


def _prepare_database() -> str:
    """Create the schema and one connected clinic; returns its webhook key."""
    from saas import create_app
    from saas.extensions import db
    from saas.queues import get_redis
    from saas.tenancy.models import Clinic, Organization

    app = create_app()
    with app.app_context():
        db.create_all()
        get_redis().ping()  # start the embedded Redis now; gunicorn workers attach to it
        organization = Organization(slug="bench", name="ベンチマーク医療法人")
        db.session.add(organization)
        db.session.flush()
        clinic = Clinic(slug="bench", name="ベンチ医院", organization_id=organization.id)
        clinic.line_channel_id, clinic.line_channel_secret, clinic.line_access_token = CHANNEL_ID, SECRET, TOKEN
        db.session.add(clinic)
        db.session.commit()
        return clinic.webhook_key


def _make_events(control, count: int, patients: int = 50) -> list[dict]:
    """Message events with real reply tokens, made by the sandbox but not delivered."""
    users = [control.add_patient(CHANNEL_ID, f"患者{i}") for i in range(patients)]
    for user in users:
        control.follow(CHANNEL_ID, user, deliver=False)
    return [
        control.send_text(CHANNEL_ID, users[i % patients], f"質問{i}", deliver=False)["event"] for i in range(count)
    ]


def _warm_up(url: str, concurrency: int) -> None:
    """Empty deliveries (LINE's connection check) so every gunicorn thread has booted."""
    _fire(url, [None] * concurrency * 4, concurrency)


def _fire(url: str, events: list[dict | None], concurrency: int) -> dict:
    from tests.webhooks.support import sign

    local = threading.local()

    def post(event: dict) -> tuple[float, int]:
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        body = json.dumps({"destination": "U" + "0" * 32, "events": [event] if event else []}).encode()
        headers = {"content-type": "application/json", "x-line-signature": sign(SECRET, body)}
        started = time.perf_counter()
        try:
            status = session.post(url, data=body, headers=headers, timeout=30).status_code
        except requests.RequestException:
            status = 0
        return time.perf_counter() - started, status

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(post, events))
    elapsed = time.perf_counter() - started
    latencies = sorted(seconds * 1000 for seconds, _ in results)
    return {
        "events": len(events),
        "events_per_s": len(events) / elapsed,
        "p50_ms": statistics.median(latencies),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "over_2s": sum(1 for ms in latencies if ms > 2000),
        "errors": sum(1 for _, status in results if status != 200),
    }


def _print(rows: dict[str, dict], args) -> None:
    print(
        f"\nwebhook ingest: {args.events} events per mode, {args.concurrency} concurrent, "
        f"gunicorn {args.workers}x{args.threads} gthread, LINE latency {args.line_latency_ms} ms"
    )
    print(f"{'mode':<28}{'events/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'>2 s':>7}{'errors':>8}")
    for name, row in rows.items():
        print(
            f"{name:<28}{row['events_per_s']:>10.0f}{row['p50_ms']:>10.1f}{row['p99_ms']:>10.1f}"
            f"{row['over_2s']:>7}{row['errors']:>8}"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--line-latency-ms", type=int, default=50)
    parser.add_argument("--database-url", default="", help="an EMPTY database to use instead of temp SQLite")
    args = parser.parse_args(argv)
    args.events = max(1, min(args.events, 20000))

    tmp = Path(tempfile.mkdtemp(prefix="tsunagu-bench-"))
    sandbox_port, product_port = _free_port(), _free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(
        TSUNAGU_INSTANCE_DIR=str(tmp),
        LINE_API_BASE=sandbox_url,
        LINE_DATA_API_BASE=sandbox_url,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{product_port}",
        SECRET_KEY="benchmark",
        SANDBOX_ENABLED="1",  # development secrets are fine for a benchmark on loopback
    )
    if args.database_url:
        env["DATABASE_URL"] = args.database_url
    os.environ.clear()
    os.environ.update(env)
    processes = []
    try:
        webhook_key = _prepare_database()
        processes.append(_gunicorn("saas.sandbox:create_sandbox_app()", sandbox_port, 1, 32, env))
        processes.append(
            _gunicorn("tests.perf.webhook_ingest:benchmark_app()", product_port, args.workers, args.threads, env)
        )
        _wait_until_up(sandbox_url + "/_sandbox/channels")
        _wait_until_up(f"http://127.0.0.1:{product_port}/healthz")

        from saas.sandbox.control import SandboxControl

        control = SandboxControl(sandbox_url)
        control.add_channel(CHANNEL_ID, SECRET, TOKEN)
        control.configure(CHANNEL_ID, latency_ms=args.line_latency_ms, rate_limits={})
        events = _make_events(control, 2 * args.events)
        base = f"http://127.0.0.1:{product_port}"
        _warm_up(f"{base}/webhooks/line/{webhook_key}", args.concurrency)
        _warm_up(f"{base}/naive/line/{webhook_key}", args.concurrency)
        rows = {
            "queued (product)": _fire(f"{base}/webhooks/line/{webhook_key}", events[: args.events], args.concurrency),
            "naive (in-request)": _fire(f"{base}/naive/line/{webhook_key}", events[args.events :], args.concurrency),
        }
        _print(rows, args)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=15)


if __name__ == "__main__":
    main()
