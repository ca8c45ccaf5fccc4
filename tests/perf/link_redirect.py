"""Short-link redirect benchmark: ``GET /l/<code>`` (lookup + click insert + 302) beside a bare
Flask 302 with no lookup, both under the Procfile's gunicorn (``-c gunicorn.conf.py``).

Run::

    python -m tests.perf.link_redirect                      # 10 s per mode, 16 connections, 200,000 codes
    python -m tests.perf.link_redirect --seconds 20 --connections 32 --codes 1000000

Configuration: with DATABASE_URL and REDIS_URL set (production), a scratch database
``tsunagu_bench_links`` on that Postgres server (dropped afterwards); otherwise a temporary
SQLite file. Modes, each loaded with wrk (closed loop) requesting random codes of the table
with a LINE in-app browser user agent (counted as clicks):

1. ``/l/<code>``: the product's redirect, every request one click row;
2. ``/l/<code>`` as LINE's link preview (``facebookexternalhit``): lookup, no insert;
3. the product app's stack with a route that answers 302 without any lookup (hooks' cost);
4. a bare Flask app whose only route answers 302 (the floor: gunicorn + Flask).

Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import tempfile
from contextlib import nullcontext
from pathlib import Path

from tests.perf import support
from tests.perf.webhook_ingest import _free_port, _gunicorn, _milliseconds, _stop, _wait_until_up

PATIENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari Line/14.1.0"
PREVIEW = "facebookexternalhit/1.1;line-poker/1.0"
WRK_SCRIPT = """
local codes = dofile("%(data)s")
math.randomseed(os.time())
wrk.headers["User-Agent"] = "%(agent)s"
function request()
  return wrk.format("GET", "%(prefix)s" .. codes[math.random(#codes)])
end
"""


def bare_app():
    """The baseline: a Flask app whose one route answers a 302 (gunicorn entry point)."""
    from flask import Flask, redirect

    app = Flask(__name__)
    app.add_url_rule("/l/<code>", "bare", lambda code: redirect("https://example.jp/", 302))
    app.add_url_rule("/healthz", "health", lambda: "ok")
    return app


def benchmark_app():
    """The product app plus ``/bare/<code>``: its full stack of hooks, a 302 without a lookup."""
    from flask import redirect

    from saas import create_app

    app = create_app()
    app.add_url_rule("/bare/<code>", "bench_bare", lambda code: redirect("https://example.jp/", 302))
    return app


def _prepare_database(codes: int) -> list[str]:
    """The schema, one clinic and ``codes`` tracked links (set-based inserts); a sample of codes."""
    import sqlalchemy as sa

    from saas import create_app
    from saas.extensions import db
    from saas.links.models import TrackedLink
    from saas.links.services import new_code
    from saas.tenancy.models import Clinic, Organization
    from saas.tenancy.scoping import tenant_scope

    app = create_app()
    with app.app_context():
        db.create_all()
        organization = Organization(slug="bench", name="ベンチマーク医療法人")
        db.session.add(organization)
        db.session.flush()
        clinic = Clinic(slug="bench", name="ベンチ医院", organization_id=organization.id)
        db.session.add(clinic)
        db.session.commit()
        sample: list[str] = []
        with tenant_scope(clinic.id):
            for start in range(0, codes, 10_000):
                rows = [
                    {"clinic_id": clinic.id, "code": new_code(), "url": f"https://example.jp/news/{n % 7}",
                     "delivery_id": 1 + n // 50_000, "friend_id": n}
                    for n in range(start, min(codes, start + 10_000))
                ]  # fmt: skip
                db.session.execute(sa.insert(TrackedLink), rows)
                sample += [row["code"] for row in random.sample(rows, min(500, len(rows)))]
            db.session.commit()
        return sample


def _clicks() -> int:
    import sqlalchemy as sa

    from saas import create_app
    from saas.extensions import db
    from saas.links.models import LinkClick
    from saas.tenancy.scoping import platform_scope

    with create_app().app_context(), platform_scope("benchmark: clicks written"):
        return db.session.scalar(sa.select(sa.func.count()).select_from(LinkClick))


def _wrk(url_base: str, prefix: str, codes: list[str], agent: str, args, tmp: Path, tag: str) -> dict:
    data = tmp / f"codes-{tag}.lua"
    data.write_text("return {" + ",".join(f'"{code}"' for code in codes) + "}")
    script = tmp / f"load-{tag}.lua"
    script.write_text(WRK_SCRIPT % {"data": data, "agent": agent, "prefix": prefix})
    command = ["wrk", "-t", "2", "-c", str(args.connections), "-d", f"{args.seconds}s", "--latency", "-s", str(script)]
    output = subprocess.run([*command, url_base], capture_output=True, text=True, timeout=args.seconds + 60).stdout
    done = int(re.search(r"(\d+) requests in", output).group(1))
    other = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {
        "requests": done,
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "p50_ms": _milliseconds(re.search(r"50%\s+(\S+)", output).group(1)),
        "p99_ms": _milliseconds(re.search(r"99%\s+(\S+)", output).group(1)),
        "errors": int(other.group(1)) if other else 0,
    }


def _environment(tmp: Path, port: int, database_url: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(
        TSUNAGU_INSTANCE_DIR=str(tmp),
        PUBLIC_BASE_URL=f"http://127.0.0.1:{port}",
        SECRET_KEY="benchmark",
        DATABASE_URL=database_url,
        SANDBOX_ENABLED="1",  # development secrets are fine for a benchmark on loopback
        WEB_ACCESS_LOG="",
    )
    if args_workers := os.environ.get("BENCH_WEB_CONCURRENCY"):
        env["WEB_CONCURRENCY"] = args_workers
    return env


def _run(args, tmp: Path, database_url: str) -> dict:
    product_port, bare_port = _free_port(), _free_port()
    env = _environment(tmp, product_port, database_url)
    os.environ.clear()
    os.environ.update(env)
    codes = _prepare_database(args.codes)
    processes = [
        _gunicorn("tests.perf.link_redirect:benchmark_app()", product_port, env, "-c", "gunicorn.conf.py"),
        _gunicorn("tests.perf.link_redirect:bare_app()", bare_port, env, "-c", "gunicorn.conf.py"),
    ]
    product, bare = f"http://127.0.0.1:{product_port}", f"http://127.0.0.1:{bare_port}"
    try:
        for url in (f"{product}/healthz", f"{bare}/healthz"):
            _wait_until_up(url)
        before = _clicks()
        rows = {"/l/<code>: lookup + click insert + 302": _wrk(product, "/l/", codes, PATIENT, args, tmp, "tap")}
        counted = _clicks() - before
        rows["/l/<code> as LINE's preview: lookup, no insert"] = _wrk(product, "/l/", codes, PREVIEW, args, tmp, "bot")
        rows["product stack, 302 without lookup"] = _wrk(product, "/bare/", codes, PATIENT, args, tmp, "stack")
        rows["baseline: bare Flask 302"] = _wrk(bare, "/l/", codes, PATIENT, args, tmp, "bare")
        rows["/l/<code>: lookup + click insert + 302"]["clicks_written"] = counted
        return rows
    finally:
        for process in processes:
            _stop(process)


def _print(rows: dict[str, dict], args) -> None:
    print(f"\nshort-link redirect, {support.configuration()}, {args.codes:,} codes, "
          f"{args.connections} connections, {support.machine()}")  # fmt: skip
    print(f"{'mode':<52}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for name, row in rows.items():
        print(f"{name:<52}{row['requests_per_s']:>9.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{row['errors']:>8}")
    tap = rows["/l/<code>: lookup + click insert + 302"]
    print(f"clicks written during the first mode: {tap['clicks_written']:,} of {tap['requests']:,} requests")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--codes", type=int, default=200_000)
    parser.add_argument("--json", default="")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is needed for this benchmark (apt-get install wrk)")
    tmp = Path(tempfile.mkdtemp(prefix="tsunagu-bench-links-"))
    from saas.queues import stop_embedded_servers

    database = (
        support.scratch_postgres("tsunagu_bench_links")
        if support.production()
        else nullcontext(f"sqlite:///{tmp}/links.sqlite3")
    )
    configuration = support.configuration()
    try:
        with database as url:
            rows = _run(args, tmp, url)
    finally:
        stop_embedded_servers()
    _print(rows, args)
    result = {"configuration": configuration, "machine": support.machine(), "codes": args.codes, "modes": rows}
    support.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
