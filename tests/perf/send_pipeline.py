"""Send-pipeline benchmark: a 100,000-friend segment end to end through the LINE sandbox,
beside a naive one-push-per-friend loop, in the same run.

Run::

    python -m tests.perf.send_pipeline                      # 100,000 friends, naive loop on 2,000
    python -m tests.perf.send_pipeline --friends 20000 --naive 1000 --line-latency-ms 30

What it does, in one process on loopback with embedded defaults (a temporary SQLite database
and the embedded Redis; nothing from DATABASE_URL/REDIS_URL):

1. starts the LINE sandbox over real HTTP (werkzeug, threaded) and a clinic on the standard
   plan; inserts ``--friends`` following friends with one attribute in bulk, plus 5% that
   the segment excludes, and registers them all with the sandbox in bulk;
2. pipeline, twice: with rate limits off (sandbox and our limiter), then at LINE's real
   per-channel limits (multicast 200 req/s, push 2,000 req/s) enforced on both sides.
   Each run is the real path: recipients snapshot, quota reservation, chunks of 500 with
   retry keys, one RQ job per chunk, run by one in-process RQ worker (``SimpleWorker``);
   production runs several worker processes, which only helps;
3. naive: ``--naive`` friends pushed one by one in a loop (one request per friend, the same
   LINE adapter), extrapolated linearly to ``--friends`` (said so in the output);
4. prints recipients/s and time to last delivery (from pressing send to the last message
   accepted by the sandbox) per mode.

Bounded: every mode stops after ``--timeout`` seconds.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import tempfile
import time
import uuid
from pathlib import Path


def _configure_environment(tmp: Path) -> dict:
    os.environ.pop("DATABASE_URL", None)
    os.environ.pop("REDIS_URL", None)
    os.environ.setdefault("TSUNAGU_INSTANCE_DIR", str(tmp / "instance"))
    return {
        "TESTING": True,
        "SECRET_KEY": "bench",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp / 'bench.sqlite3'}",
        "REDIS_URL": "",
        "EMBEDDED_REDIS_PATH": str(tmp / "redis" / "bench.rdb"),
        "SERVER_NAME": None,
    }


def _setup_clinic(sandbox, count: int):
    import sqlalchemy as sa

    from saas.extensions import db
    from saas.friends.models import Friend
    from saas.quota.plans import set_clinic_plan
    from saas.tenancy.scoping import tenant_scope
    from tests.factories import gen_clinic

    channel_id, token = "1990000001", "bench-" + secrets.token_hex(20)
    sandbox.add_channel(channel_id, "s" * 32, token, plan="standard")
    clinic = gen_clinic(line_channel_id=channel_id, line_channel_secret="s" * 32, line_access_token=token)
    others = max(count // 20, 1)
    user_ids = ["U" + secrets.token_hex(16) for _ in range(count + others)]
    with tenant_scope(clinic.id):
        set_clinic_plan(clinic.id, "standard", extra_allowed=True)
        rows = [
            {
                "clinic_id": clinic.id,
                "line_user_id": user_id,
                "display_name": f"患者{i}",
                "status": "following",
                "consent_marketing": True,
                "consent_booking": True,
                "attributes": {"interest": "子育て" if i < count else "美容"},
            }
            for i, user_id in enumerate(user_ids)
        ]
        for start in range(0, len(rows), 10000):
            db.session.execute(sa.insert(Friend), rows[start : start + 10000])
        db.session.commit()
    for start in range(0, len(user_ids), 20000):
        sandbox.add_patients(channel_id, user_ids[start : start + 20000])
    return clinic, user_ids[:count]


def _last_accepted_ms(sandbox, channel_id: str, operation: str) -> int:
    accepted = [r["at"] for r in sandbox.requests(channel_id) if r["operation"] == operation and r["status"] == 200]
    return max(accepted) if accepted else 0


def run_pipeline(app, sandbox, clinic, label: str, timeout: float) -> dict:
    """One segment send through the whole pipeline; returns its figures."""
    from rq import SimpleWorker

    from saas.delivery import services
    from saas.delivery.models import Delivery
    from saas.extensions import db
    from saas.queues import all_queues, get_redis
    from saas.tenancy.scoping import tenant_scope

    started = time.time()
    with tenant_scope(clinic.id):
        delivery = services.create_delivery(
            messages=[{"type": "text", "text": f"{label}: 子育て世代の方へ、予防接種のお知らせです。"}],
            kind="segment",
            segment={"attributes": {"interest": "子育て"}},
        )
        services.submit(delivery)
        delivery_id = delivery.id
    planned = time.time()
    deadline = started + timeout
    while time.time() < deadline:
        SimpleWorker(all_queues(), connection=get_redis()).work(burst=True)
        db.session.expire_all()
        with tenant_scope(clinic.id):
            found = db.session.get(Delivery, delivery_id)
            if found.finished_at:
                break
        time.sleep(0.05)
    finished = time.time()
    with tenant_scope(clinic.id):
        found = db.session.get(Delivery, delivery_id)
        sent, status = found.sent, found.status
    last_ms = _last_accepted_ms(sandbox, clinic.line_channel_id, "multicast")
    to_last = (last_ms / 1000 - started) if last_ms else float("nan")
    return {
        "label": label,
        "sent": sent,
        "status": status,
        "plan_s": planned - started,
        "total_s": finished - started,
        "to_last_s": to_last,
        "rate": sent / to_last if to_last and to_last > 0 else 0,
    }


def run_naive(app, sandbox, clinic, user_ids: list[str], label: str, timeout: float) -> dict:
    """One push per friend in a loop (what a first draft would do)."""
    from saas.line import client as line

    messages = [{"type": "text", "text": f"{label}: 予防接種のお知らせです。"}]
    started = time.time()
    done = 0
    for user_id in user_ids:
        line.push(clinic, user_id, messages, retry_key=str(uuid.uuid4()))
        done += 1
        if time.time() - started > timeout:
            break
    elapsed = time.time() - started
    return {"label": label, "sent": done, "total_s": elapsed, "to_last_s": elapsed, "rate": done / elapsed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--friends", type=int, default=100_000)
    parser.add_argument("--naive", type=int, default=2_000, help="friends the naive loop actually pushes to")
    parser.add_argument("--line-latency-ms", type=int, default=0, help="artificial latency per LINE call")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    for name in ("werkzeug", "rq.worker", "rq.scheduler", "rq.queue"):
        logging.getLogger(name).setLevel(logging.WARNING)

    tmp = Path(tempfile.mkdtemp(prefix="tsunagu-send-bench-"))
    settings = _configure_environment(tmp)
    from saas import create_app
    from saas.delivery.ratelimit import LINE_LIMITS
    from saas.extensions import db
    from saas.jobs import use_worker_app
    from saas.tenancy.scoping import platform_scope
    from tests.sandbox_fixtures import SandboxServer

    app = create_app(settings)
    use_worker_app(app)
    server = SandboxServer()
    app.config["LINE_API_BASE"] = app.config["LINE_DATA_API_BASE"] = server.url
    from saas.sandbox.control import SandboxControl

    sandbox = SandboxControl(server.url)
    results = []
    with app.app_context():
        db.create_all()
        with platform_scope("benchmark setup"):
            t0 = time.time()
            clinic, user_ids = _setup_clinic(sandbox, args.friends)
            print(f"setup: {args.friends:,} targeted friends (+5% outside the segment) in {time.time() - t0:.1f}s")
        channel = clinic.line_channel_id
        sandbox.configure(channel, latency_ms=args.line_latency_ms)
        unlimited = {name: (10**9, 1.0) for name in LINE_LIMITS}

        sandbox.configure(channel, rate_limits={})
        app.config["DELIVERY_RATE_LIMITS"] = unlimited
        results.append(run_pipeline(app, sandbox, clinic, "pipeline, rate limits off", args.timeout))
        results.append(run_naive(app, sandbox, clinic, user_ids[: args.naive], "naive push loop, limits off", 300))

        sandbox.configure(channel, rate_limits="line")
        app.config["DELIVERY_RATE_LIMITS"] = {}
        results.append(run_pipeline(app, sandbox, clinic, "pipeline, LINE's real limits", args.timeout))
        results.append(run_naive(app, sandbox, clinic, user_ids[: args.naive], "naive push loop, LINE limits", 300))
    server.stop()
    _report(results, args)


def _report(results: list[dict], args) -> None:
    print()
    print(f"{'mode':34} {'sent':>9} {'recipients/s':>13} {'to last delivery':>17} {'for':>9}")
    for r in results:
        naive = r["label"].startswith("naive")
        projected = args.friends / r["rate"] if naive and r["rate"] else r["to_last_s"]
        note = f"{projected:8.1f}s (extrapolated from {r['sent']:,})" if naive else f"{r['to_last_s']:8.1f}s"
        print(f"{r['label']:34} {r['sent']:>9,} {r['rate']:>13,.0f} {note:>17} {args.friends:>9,}")
        if not naive:
            print(f"{'':34} planning (snapshot, quota, chunks, enqueue): {r['plan_s']:.1f}s; status {r['status']}")
    print(
        "\nThe naive loop is capped at --naive friends and extrapolated linearly to --friends;"
        " it sends one request per friend, the pipeline one per 500."
    )


if __name__ == "__main__":
    main()
