"""Webhook-ingest benchmark: the product's endpoint under the Procfile's gunicorn, beside the
previous server configuration and beside a naive handler that does the work inside the request.

Run::

    python -m tests.perf.webhook_ingest                  # 10 s per mode, 32 connections
    python -m tests.perf.webhook_ingest --seconds 20 --connections 64 --line-latency-ms 80

Configuration: with DATABASE_URL and REDIS_URL set (production), a scratch database
``tsunagu_bench_webhooks`` on that Postgres server (dropped afterwards) and that Redis;
otherwise a temporary SQLite file and the embedded Redis (stopped afterwards).

1. starts the LINE sandbox under gunicorn (one process: its state is in memory), with an
   artificial latency per Messaging API call (``--line-latency-ms``);
2. starts the product under gunicorn with ``-c gunicorn.conf.py`` (what the Procfile runs), with
   one extra route mounted only here: ``/naive/line/<key>``, which does what a first draft would
   do inside the request: verify, fetch the profile from LINE, store friend and message, reply;
3. loads ``/webhooks/line/<key>`` with signed single-event deliveries, each with its own
   ``webhookEventId``: with ``wrk`` (C, closed loop, ``--connections``) when it is installed,
   else from a Python thread pool (which then limits the figure: it is printed as such);
4. repeats 3. against the previous configuration (``gunicorn --workers 3``, sync workers);
5. fires real message events (sandbox reply tokens) at the naive route from a thread pool.

The queued jobs are not run here: ingest is what LINE waits for (it gives up after ~2 s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path

import requests

from tests.perf import support

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


def _gunicorn(target: str, port: int, env: dict, *options: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", *options, "-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    return subprocess.Popen([*command, target], cwd=ROOT, env=env, start_new_session=True)


def _stop(process: subprocess.Popen) -> None:
    """Stop a gunicorn master and its workers (its own process group)."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=5)


def _wait_until_up(url: str, timeout: float = 180) -> None:
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


def _warm_up(url: str, concurrency: int, tag: str = "") -> None:
    """Empty deliveries (LINE's connection check) so every gunicorn thread has booted, then
    stored ones (``tag`` given) so every process has compiled its statements and warmed its
    connections before the measured run: a process's first delivery costs about a second of CPU."""
    _fire(url, [None] * concurrency * 4, concurrency)
    if tag:
        from tests.webhooks.support import text_event

        events = [text_event("U" + f"{n:032x}", "warm", event_id=f"01W{tag}{n:020d}") for n in range(concurrency * 20)]
        _fire(url, events, concurrency)


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


WRK_SCRIPT = """
local bodies, signatures = dofile("%(data)s")
local threads, counter = 0, 0
function setup(thread)
  thread:set("offset", threads)
  threads = threads + 1
  thread:set("stride", %(threads)d)
end
function request()
  local n = (offset + counter * stride) %% #bodies + 1
  counter = counter + 1
  return wrk.format("POST", nil, {["content-type"] = "application/json", ["x-line-signature"] = signatures[n]}, bodies[n])
end
"""


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def _signed_bodies(count: int, tag: str) -> list[tuple[str, str]]:
    from tests.webhooks.support import sign, text_event

    bodies = []
    for n in range(count):
        event = text_event("U" + f"{n % 500:032x}", f"質問{n}", event_id=f"01{tag}{n:022d}")
        body = json.dumps({"destination": "U" + "0" * 32, "events": [event]}, ensure_ascii=False)
        bodies.append((body, sign(SECRET, body.encode())))
    return bodies


def _wrk(url: str, seconds: int, connections: int, tag: str, tmp: Path) -> dict:
    """Closed-loop load with wrk; every request a distinct signed event (until the bodies run out)."""
    threads = 2
    bodies = _signed_bodies(max(5000, seconds * 4000), tag)
    data = tmp / f"bodies-{tag}.lua"
    data.write_text(
        "return {"
        + ",".join(_lua_string(b) for b, _ in bodies)
        + "}, {"
        + ",".join(_lua_string(s) for _, s in bodies)
        + "}"
    )
    script = tmp / f"load-{tag}.lua"
    script.write_text(WRK_SCRIPT % {"data": data, "threads": threads})
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds}s",
        "--latency",
        "-s",
        str(script),
        url,
    ]
    output = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60).stdout
    try:
        return _parse_wrk(output, len(bodies))
    except (AttributeError, ValueError) as unreadable:
        raise RuntimeError(f"wrk's output could not be read:\n{output}") from unreadable


def _milliseconds(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _parse_wrk(output: str, bodies: int) -> dict:
    requests_done = int(re.search(r"(\d+) requests in", output).group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return {
        "events": requests_done,
        "events_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": _milliseconds(re.search(r"^\s*50%\s+(\S+)", output, re.M).group(1)),  # not "66.50%" of Req/Sec
        "p99_ms": _milliseconds(re.search(r"^\s*99%\s+(\S+)", output, re.M).group(1)),
        "errors": (int(non_2xx.group(1)) if non_2xx else 0) + (sum(map(int, errors.groups())) if errors else 0),
        "repeated_bodies": max(0, requests_done - bodies),
        "client": "wrk",
    }


def _cpu_seconds(server: subprocess.Popen) -> float:
    """User + system CPU of a gunicorn master and its workers so far."""
    import psutil

    master = psutil.Process(server.pid)
    total = 0.0
    for process in [master, *master.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def _load(url: str, args, tag: str, tmp: Path, server: subprocess.Popen) -> dict:
    """Load one server; adds its CPU per request (the figure a loaded, shared machine does not blur)."""
    before = _cpu_seconds(server)
    if shutil.which("wrk"):
        row = _wrk(url, args.seconds, args.connections, tag, tmp)
    else:
        from tests.webhooks.support import text_event

        events = [
            text_event("U" + f"{n % 500:032x}", f"質問{n}", event_id=f"01{tag}{n:022d}") for n in range(args.events)
        ]
        row = {**_fire(url, events, args.connections), "client": "python threads (limits the figure)"}
    row["server_cpu_ms_per_request"] = 1000 * (_cpu_seconds(server) - before) / max(row["events"], 1)
    return row


def _print(rows: dict[str, dict], args) -> None:
    print(f"\nwebhook ingest, {support.configuration()}, LINE latency {args.line_latency_ms} ms, {support.machine()}")
    print(f"{'mode':<44}{'events/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'CPU ms/req':>11}{'errors':>8}  client")
    for name, row in rows.items():
        cpu = row.get("server_cpu_ms_per_request")
        print(
            f"{name:<44}{row['events_per_s']:>10.0f}{row['p50_ms']:>10.1f}{row['p99_ms']:>10.1f}"
            f"{'—' if cpu is None else f'{cpu:.2f}':>11}{row['errors']:>8}  {row.get('client', '')}"
        )
    print("CPU ms/req: the product's gunicorn processes only (not Postgres, Redis or the load generator)")


def _environment(tmp: Path, sandbox_url: str, product_port: int, database_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        TSUNAGU_INSTANCE_DIR=str(tmp),
        LINE_API_BASE=sandbox_url,
        LINE_DATA_API_BASE=sandbox_url,
        PUBLIC_BASE_URL=f"http://127.0.0.1:{product_port}",
        SECRET_KEY="benchmark",
        DATABASE_URL=database_url,
        PORT=str(product_port),
        SANDBOX_ENABLED="1",  # development secrets are fine for a benchmark on loopback
    )
    return env


def _run(args, tmp: Path, database_url: str) -> dict:
    sandbox_port, product_port, old_port = _free_port(), _free_port(), _free_port()
    sandbox_url = f"http://127.0.0.1:{sandbox_port}"
    env = _environment(tmp, sandbox_url, product_port, database_url)
    os.environ.clear()
    os.environ.update(env)
    webhook_key = _prepare_database()
    processes = []
    try:
        processes.append(
            _gunicorn(
                "saas.sandbox:create_sandbox_app()", sandbox_port, env, "-w", "1", "-k", "gthread", "--threads", "32"
            )
        )
        product_server = _gunicorn(
            "tests.perf.webhook_ingest:benchmark_app()", product_port, env, "-c", "gunicorn.conf.py"
        )
        old_server = _gunicorn("tests.perf.webhook_ingest:benchmark_app()", old_port, env, "--workers", "3")
        processes += [product_server, old_server]
        for url in (
            sandbox_url + "/_sandbox/channels",
            f"http://127.0.0.1:{product_port}/healthz",
            f"http://127.0.0.1:{old_port}/healthz",
        ):
            _wait_until_up(url)
        from saas.sandbox.control import SandboxControl

        control = SandboxControl(sandbox_url)
        control.add_channel(CHANNEL_ID, SECRET, TOKEN)
        control.configure(CHANNEL_ID, latency_ms=args.line_latency_ms, rate_limits={})
        product, old = f"http://127.0.0.1:{product_port}", f"http://127.0.0.1:{old_port}"
        for base, tag in ((product, "NEW"), (old, "OLD")):
            _warm_up(f"{base}/webhooks/line/{webhook_key}", args.connections, tag)
        rows = {
            "queued, gunicorn.conf.py (Procfile)": _load(
                f"{product}/webhooks/line/{webhook_key}", args, "NEW", tmp, product_server
            ),
            "queued, previous: gunicorn --workers 3 (sync)": _load(
                f"{old}/webhooks/line/{webhook_key}", args, "OLD", tmp, old_server
            ),
        }
        if not args.naive_events:
            return rows
        events = _make_events(control, args.naive_events)
        _warm_up(f"{product}/naive/line/{webhook_key}", args.connections)
        rows["naive: in-request handling"] = {
            **_fire(f"{product}/naive/line/{webhook_key}", events, args.connections),
            "client": "python threads",
        }
        return rows
    finally:
        for process in processes:
            _stop(process)


def main(argv: list[str] | None = None) -> dict:
    from tests.perf import support

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="load duration per queued mode (wrk)")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--events", type=int, default=3000, help="requests per queued mode without wrk")
    parser.add_argument("--naive-events", type=int, default=600, help="0 leaves the naive handler out")
    parser.add_argument("--line-latency-ms", type=int, default=50)
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="tsunagu-bench-"))
    from saas.queues import stop_embedded_servers

    database = (
        support.scratch_postgres("tsunagu_bench_webhooks")
        if support.production()
        else nullcontext(f"sqlite:///{tmp}/webhooks.sqlite3")
    )
    configuration = support.configuration()
    try:
        with database as url:
            rows = _run(args, tmp, url)
    finally:
        stop_embedded_servers()
    _print(rows, args)
    result = {
        "configuration": configuration,
        "machine": support.machine(),
        "line_latency_ms": args.line_latency_ms,
        "connections": args.connections,
        "modes": rows,
    }
    support.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
