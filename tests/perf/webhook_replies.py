"""Webhook replies benchmark: events handled per worker process, and ack → reply latency.

Run::

    python -m tests.perf.webhook_replies                       # 1,000 events per phase and mode
    python -m tests.perf.webhook_replies --events 2000 --rate 100 --line-latency-ms 200

Production configuration when ``DATABASE_URL`` and ``REDIS_URL`` are set (Postgres, Redis),
otherwise the embedded defaults in a temporary directory (SQLite, embedded Redis). What it does:

1. starts the LINE sandbox under gunicorn (one process, its state is in memory) with a latency
   per Messaging API call (``--line-latency-ms``), and the product under gunicorn;
2. per worker mode, ``simple`` (the product's ``webhooks`` worker: no fork) and ``fork`` (RQ's
   forking worker, the baseline), on a clinic of its own:
   - the clinic's 100 patients are known friends, as their follow events leave them
     (``--first-contact``: unknown, so each one's first events go one by one, profile fetched);
   - throughput: N message events are acked while no worker runs, then ONE worker process
     (``flask worker --queues webhooks --mode ...``) starts; events/s is N over the time from
     the first claim to the last event handled (database timestamps: process start-up excluded);
   - latency: with that worker running, N more events arrive as webhooks at ``--rate`` per
     second; ack → reply is the time from our 200 to the webhook until the sandbox accepted
     the reply for that event's token (or the push that replaced it);
3. prints both modes side by side; stops every process it started (also on Ctrl+C).

Every event is answered by a responder mounted only here ("受け付けました"), so each one costs
one LINE call. LINE's reply token is valid for about a minute; the goal is p99 < 2 s at 100/s.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
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

from tests.perf import support

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.perf.webhook_replies:benchmark_app()"
SECRET, PATIENTS = "c" * 32, 100
ANSWER = [{"type": "text", "text": "受け付けました"}]


def benchmark_app():
    """The product with one extra responder that answers every message (web, worker)."""
    from saas import create_app
    from saas.friends.hooks import _message_responders

    def answer_everything(clinic, friend, event):
        return ANSWER

    if answer_everything.__name__ not in {r.__name__ for r in _message_responders}:
        _message_responders.insert(0, answer_everything)
    return create_app()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start(command: list[str], env: dict) -> subprocess.Popen:
    log = open(Path(env["TSUNAGU_INSTANCE_DIR"]) / "processes.log", "ab")  # noqa: SIM115 (kept by the child)
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)


def _gunicorn(target: str, port: int, workers: int, threads: int, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread", "--threads", str(threads)]
    return _start(command + ["-b", f"127.0.0.1:{port}", "--log-level", "warning", target], env)


def _worker(mode: str, env: dict) -> subprocess.Popen:
    command = [sys.executable, "-m", "flask", "--app", APP, "worker", "--queues", "webhooks", "--mode", mode]
    if os.environ.get("BENCH_PYSPY"):
        command = ["py-spy", "record", "--format", "raw", "-t", "-o", os.environ["BENCH_PYSPY"] + mode, "--"] + command
    return _start(command, env)


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_until_up(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


class Product:
    """The benchmark's view of the product database (this process, same configuration)."""

    def __init__(self) -> None:
        from saas import create_app

        self.app = create_app()

    def prepare(self, channel_id: str, token: str) -> tuple[int, str]:
        """Schema (if missing) and one connected clinic; returns (clinic id, webhook key)."""
        from saas.extensions import db
        from saas.queues import get_redis
        from saas.quota.plans import set_clinic_plan
        from saas.tenancy.models import Clinic, Organization
        from saas.tenancy.scoping import platform_scope

        with self.app.app_context(), platform_scope("benchmark set-up"):
            db.create_all()
            get_redis().ping()  # starts the embedded Redis now; the other processes attach to it
            organization = Organization(slug=f"bench-{channel_id}", name="ベンチマーク医療法人")
            db.session.add(organization)
            db.session.flush()
            clinic = Clinic(slug=f"bench-{channel_id}", name="ベンチ医院", organization_id=organization.id)
            clinic.line_channel_id, clinic.line_channel_secret, clinic.line_access_token = channel_id, SECRET, token
            db.session.add(clinic)
            db.session.commit()
            set_clinic_plan(clinic.id, "standard")  # the sandbox channel's plan: answers by push are not refused
            return clinic.id, clinic.webhook_key

    def add_friends(self, clinic_id: int, users: list[str]) -> None:
        """The patients as known friends, as their follow events would have left them."""
        from saas.common import utcnow
        from saas.extensions import db
        from saas.friends.models import Friend
        from saas.tenancy.scoping import tenant_scope

        with self.app.app_context(), tenant_scope(clinic_id):
            for i, user in enumerate(users):
                db.session.add(Friend(line_user_id=user, display_name=f"患者{i}", followed_at=utcnow()))
            db.session.commit()

    def progress(self, clinic_id: int) -> tuple[int, object, object]:
        """(events handled, first claim, last handled) of the clinic."""
        import sqlalchemy as sa

        from saas.extensions import db
        from saas.tenancy.scoping import tenant_scope
        from saas.webhooks.models import WebhookEvent

        with self.app.app_context(), tenant_scope(clinic_id):
            handled = sa.func.count(WebhookEvent.id).filter(WebhookEvent.state == "handled")
            row = db.session.execute(
                sa.select(handled, sa.func.min(WebhookEvent.claimed_at), sa.func.max(WebhookEvent.handled_at))
            ).one()
            return row[0], row[1], row[2]

    def empty_queue(self) -> None:
        """Drop what is left on the ``webhooks`` queue."""
        from saas.queues import WEBHOOKS, get_queue

        with self.app.app_context():
            get_queue(WEBHOOKS).empty()

    def wait_first_claim(self, clinic_id: int, worker: subprocess.Popen, timeout: float) -> float:
        """Wait until the worker claimed its first events; its CPU seconds by then (start-up excluded)."""
        deadline = time.monotonic() + timeout
        while self.progress(clinic_id)[1] is None and time.monotonic() < deadline:
            time.sleep(0.05)
        return _cpu_seconds(worker)

    def wait_handled(self, clinic_id: int, count: int, timeout: float) -> tuple[int, float]:
        """Wait (bounded) until ``count`` events are handled; (handled, events per second)."""
        deadline = time.monotonic() + timeout
        while True:
            handled, first, last = self.progress(clinic_id)
            if handled >= count or time.monotonic() > deadline:
                seconds = (last - first).total_seconds() if first and last else 0
                return handled, (handled / seconds if seconds > 0 else 0.0)
            time.sleep(0.25)


def _cpu_seconds(process: subprocess.Popen) -> float:
    """User + system CPU time of a running child process and its finished forks, from /proc (Linux)."""
    fields = Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # self and reaped children


def _patients(control, channel_id: str) -> list[str]:
    """The benchmark's patients, following the channel (their follow events are not delivered)."""
    users = [control.add_patient(channel_id, f"患者{i}") for i in range(PATIENTS)]
    for user in users:
        control.follow(channel_id, user, deliver=False)
    return users


def _make_events(control, channel_id: str, users: list[str], count: int) -> list[dict]:
    """Message events with fresh reply tokens (valid about a minute), built by the sandbox but not delivered."""

    def make(i: int) -> dict:
        return control.send_text(channel_id, users[i % len(users)], f"質問{i}", deliver=False)["event"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        return list(pool.map(make, range(count)))


def _post_paced(url: str, events: list[dict], rate: float) -> dict[str, float]:
    """POST each event as its own signed webhook at ``rate`` per second; reply token → ack time."""
    from tests.webhooks.support import sign

    local, acks, lock = threading.local(), {}, threading.Lock()
    started = time.monotonic() + 0.5

    def post(indexed: tuple[int, dict]) -> None:
        index, event = indexed
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        delay = started + (index / rate if rate else 0) - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        body = json.dumps({"destination": "U" + "0" * 32, "events": [event]}).encode()
        headers = {"content-type": "application/json", "x-line-signature": sign(SECRET, body)}
        try:
            ok = session.post(url, data=body, headers=headers, timeout=30).status_code == 200
        except requests.RequestException:
            ok = False
        if ok:
            with lock:
                acks[event["replyToken"]] = time.time()

    with ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(post, enumerate(events)))
    return acks


def _answer_times(control, channel_id: str, events: list[dict], acks: dict) -> tuple[dict[str, float], int]:
    """Reply token → when LINE (the sandbox) accepted its answer; and how many went by push."""
    token_of_user: dict[str, list[str]] = {}
    for event in events:
        if event["replyToken"] in acks:
            token_of_user.setdefault(event["source"]["userId"], []).append(event["replyToken"])
    answered, pushes = {}, 0
    for entry in control.requests(channel_id):
        body = entry.get("body") or {}
        if entry["status"] != 200:
            continue
        if entry["operation"] == "replyMessage" and body.get("replyToken"):
            answered[body["replyToken"]] = entry["at"] / 1000
        elif entry["operation"] == "pushMessage":  # the push answers the user's oldest unanswered event
            at = entry["at"] / 1000
            pending = [t for t in token_of_user.get(body.get("to"), []) if t not in answered and acks[t] <= at]
            if pending:
                answered[pending[0]] = entry["at"] / 1000
                pushes += 1
    return answered, pushes


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


def _run_mode(mode: str, n: int, args, control, product: Product, base: str, env: dict) -> dict:
    channel_id = "199900000" + ("1" if mode == "simple" else "2")
    token = f"bench-{mode}-" + "t" * 40
    control.add_channel(channel_id, SECRET, token, plan="standard")
    control.configure(channel_id, latency_ms=args.line_latency_ms, rate_limits={})
    clinic_id, key = product.prepare(channel_id, token)
    url = f"{base}/webhooks/line/{key}"
    users = _patients(control, channel_id)
    if args.known_friends:
        product.add_friends(clinic_id, users)
    _post_paced(url, _make_events(control, channel_id, users, n), rate=0)  # throughput: acked with no worker running
    print(f"{mode}: {n} events acked; starting one worker", flush=True)
    worker = _worker(mode, env)
    try:
        cpu_at_first_claim = product.wait_first_claim(clinic_id, worker, timeout=args.timeout)
        handled, per_second = product.wait_handled(clinic_id, n, timeout=args.timeout)
        cpu_ms = 1000 * (_cpu_seconds(worker) - cpu_at_first_claim) / max(handled, 1)
        print(
            f"{mode}: {handled} handled at {per_second:.0f}/s, {cpu_ms:.1f} ms CPU each; now {n} at {args.rate:.0f}/s",
            flush=True,
        )
        events = _make_events(control, channel_id, users, n)  # made now: their reply tokens are fresh
        acks = _post_paced(url, events, rate=args.rate)  # latency: at a steady rate
        product.wait_handled(clinic_id, 2 * n, timeout=args.timeout)
    finally:
        _stop([worker])
        product.empty_queue()  # the batched events' own jobs, now no-ops, must not delay the next mode
    answered, pushes = _answer_times(control, channel_id, events, acks)
    latencies = [(answered[t] - acked) * 1000 for t, acked in acks.items() if t in answered]
    return {
        "events_per_s": per_second,
        "cpu_ms": cpu_ms,
        "handled": handled,
        "p50_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": _percentile(latencies, 0.99),
        "answered": len(latencies),
        "unanswered": len(acks) - len(latencies),
        "pushes": pushes,
    }


def _print(rows: dict[str, dict], args, database: str) -> None:
    print(
        f"\nwebhook replies: {args.events} events per phase, latency phase at {args.rate}/s, "
        f"LINE latency {args.line_latency_ms} ms, {PATIENTS} patients "
        f"{'known as friends' if args.known_friends else 'unknown (first contact)'}, {database}, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        f"{'worker (1 process)':<26}{'events/s':>10}{'CPU ms':>8}{'p50 ms':>10}{'p99 ms':>10}{'answered':>10}{'push':>6}{'none':>6}"
    )
    for name, row in rows.items():
        print(
            f"{name:<26}{row['events_per_s']:>10.0f}{row['cpu_ms']:>8.1f}{row['p50_ms']:>10.0f}{row['p99_ms']:>10.0f}"
            f"{row['answered']:>10}{row['pushes']:>6}{row['unanswered']:>6}"
        )
    print(f"process logs: {os.environ['TSUNAGU_INSTANCE_DIR']}/processes.log")
    print(
        "events/s: handled by one worker process from a full queue; CPU ms: the worker's CPU time per event"
        " (a figure the machine's load does not inflate); p50/p99: ack → reply accepted by LINE."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--line-latency-ms", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=300.0, help="longest wait for one phase (seconds)")
    parser.add_argument("--modes", default="simple,fork")
    parser.add_argument(
        "--first-contact",
        dest="known_friends",
        action="store_false",
        help="the patients are unknown to the product (no follow event arrived): each one's first events go one by one",
    )
    args = parser.parse_args(argv)
    n = max(1, min(args.events, 2000))  # the sandbox keeps the last 5,000 API calls per channel

    if support.production():  # a scratch database of its own on DATABASE_URL's server
        with support.scratch_postgres(f"tsunagu_bench_replies_{os.getpid()}") as url:
            os.environ["DATABASE_URL"] = url
            _benchmark(args, n)
    else:
        _benchmark(args, n)


def _benchmark(args, n: int) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="tsunagu-bench-"))
    sandbox_port, product_port = _free_port(), _free_port()
    sandbox_url, base = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{product_port}"
    env = dict(os.environ)
    env.update(
        TSUNAGU_INSTANCE_DIR=str(tmp),
        LINE_API_BASE=sandbox_url,
        LINE_DATA_API_BASE=sandbox_url,
        PUBLIC_BASE_URL=base,
        SECRET_KEY="benchmark",
        SANDBOX_ENABLED="1",  # development secrets are fine for a benchmark on loopback
    )
    os.environ.update(env)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))  # still stop the processes below
    database = "Postgres + Redis" if env.get("DATABASE_URL") else "SQLite + embedded Redis (temporary)"
    processes: list[subprocess.Popen] = []
    try:
        product = Product()
        product.prepare("1999000000", "bench-warm-up-" + "t" * 40)  # schema and Redis before the servers
        processes.append(
            _gunicorn("saas.sandbox:create_sandbox_app()", sandbox_port, 1, 256, env)
        )  # LINE is no 32-call limit
        processes.append(_gunicorn(APP, product_port, 2, 16, env))
        _wait_until_up(sandbox_url + "/_sandbox/channels")
        _wait_until_up(base + "/healthz")

        from saas.sandbox.control import SandboxControl

        control = SandboxControl(sandbox_url)
        rows = {
            f"{mode} ({'webhooks worker' if mode == 'simple' else 'forking baseline'})": _run_mode(
                mode, n, args, control, product, base, env
            )
            for mode in args.modes.split(",")
        }
        _print(rows, args, database)
    finally:
        _stop(processes)
        from saas.queues import stop_embedded_servers

        stop_embedded_servers()


if __name__ == "__main__":
    main()
