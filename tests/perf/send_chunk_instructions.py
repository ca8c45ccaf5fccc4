"""Instructions per send chunk: a figure that a shared machine's load does not move.

Run::

    python -m tests.perf.send_chunk_instructions                 # embedded defaults
    DATABASE_URL=postgresql://... REDIS_URL=redis://.../9 python -m tests.perf.send_chunk_instructions

CPU seconds on a machine shared with other work moved by ±30 % between runs of the same code
here, too much to see a 10 % change. Valgrind's callgrind counts the instructions a process runs,
the same from run to run within about 1 %. This benchmark starts the sandbox in a process of its
own, then itself under callgrind with instrumentation off: set-up (tables, 6,000 friends, a
planned broadcast, four warm-up chunks) runs uncounted; ``callgrind_control`` then counts

1. **pipeline**: the chunk job (``saas.delivery.jobs.send_chunk``: claim, recipients, the
   multicast through line-bot-sdk over HTTP, receipts, finish check) for ``--chunks`` chunks of 500;
2. **baseline**: the same multicasts sent by a plain line-bot-sdk loop (no bookkeeping), the
   floor any sender pays for building and sending the request.

RQ's own bookkeeping around a job is not counted (see ``send_pipeline`` for the worker's CPU).
Needs valgrind (Debian's ``valgrind``); without it the benchmark says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FRIENDS = 6_000


def _wait_for(path: Path, timeout: float = 900.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline or (process and process.poll() is not None):
            raise RuntimeError(f"{path.name} did not come (the measured process ended or took too long)")
        time.sleep(0.05)


def _serve_sandbox(url_file: Path) -> None:
    from tests.sandbox_fixtures import SandboxServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = SandboxServer()
    url_file.write_text(server.url)
    while True:
        time.sleep(3600)


def _measured(work: Path, chunks: int) -> None:
    """The process callgrind runs: set up uncounted, then each phase between the parent's toggles."""
    from tests.perf.send_chunk_phases import _chunks_of_new_delivery, _run_chunks
    from tests.perf.send_pipeline import _clinic, _drop_scratch, _scratch_database, _settings

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    url = (work / "url").read_text()
    database_url, scratch = _scratch_database()
    try:
        from saas import create_app
        from saas.delivery.jobs import send_chunk
        from saas.extensions import db
        from saas.jobs import use_worker_app
        from saas.sandbox.control import SandboxControl

        app = create_app(_settings(work, database_url))
        use_worker_app(app)
        app.config.update(LINE_API_BASE=url, LINE_DATA_API_BASE=url)
        with app.app_context():
            db.create_all()
            clinic, token, user_ids = _clinic(SandboxControl(url), "1990000201", FRIENDS)
            _run_chunks(clinic.id, _chunks_of_new_delivery(clinic.id)[:4])
            chunk_ids = _chunks_of_new_delivery(clinic.id)[:chunks]
            send_baseline = _baseline_sender(url, token, user_ids)
            send_baseline(1)  # warm
            (work / "ready").write_text(json.dumps({"pid": os.getpid(), "chunks": len(chunk_ids)}))
            _wait_for(work / "go-pipeline")
            for chunk_id in chunk_ids:
                assert send_chunk(chunk_id, clinic.id) == "sent"
            (work / "done-pipeline").touch()
            _wait_for(work / "go-baseline")
            send_baseline(len(chunk_ids))
            (work / "done-baseline").touch()
            _wait_for(work / "stop")
    finally:
        _drop_scratch(scratch)


def _baseline_sender(url: str, token: str, user_ids: list[str]):
    from linebot.v3.messaging import ApiClient, Configuration, MessagingApi, MulticastRequest, TextMessage

    api = MessagingApi(ApiClient(Configuration(host=url, access_token=token)))

    def send(count: int) -> None:
        for n in range(count):
            batch = user_ids[(n % (len(user_ids) // 500)) * 500 :][:500]
            request = MulticastRequest(to=batch, messages=[TextMessage(text="予防接種のお知らせです。")])
            api.multicast(request, x_line_retry_key=str(uuid.uuid4()))

    return send


def _instructions(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith(("summary:", "totals:")):
            return int(line.split()[1])
    raise ValueError(f"no totals in {path}")


def _callgrind(pid: int, flag: str) -> None:
    subprocess.run(["callgrind_control", flag, str(pid)], check=True, capture_output=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=10)
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--measured", help=argparse.SUPPRESS)
    parser.add_argument("--serve-sandbox", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_sandbox:
        _serve_sandbox(Path(args.serve_sandbox))
    elif args.measured:
        _measured(Path(args.measured), args.chunks)
    elif not shutil.which("valgrind"):
        print("valgrind is not installed (apt-get install valgrind): no instruction counts")
    else:
        _run(args)


def _run(args) -> None:
    work = Path(tempfile.mkdtemp(prefix="tsunagu-instructions-"))
    env = {**os.environ, "TSUNAGU_INSTANCE_DIR": str(work / "instance")}
    this = [sys.executable, "-m", "tests.perf.send_chunk_instructions"]
    sandbox = subprocess.Popen([*this, "--serve-sandbox", str(work / "url")], cwd=ROOT, env=env)
    measured = None
    try:
        _wait_for(work / "url", 60)
        out = work / "callgrind.out"
        valgrind = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}"]
        command = [*valgrind, *this, "--measured", str(work), "--chunks", str(args.chunks)]
        measured = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_for(work / "ready", process=measured)
        ready = json.loads((work / "ready").read_text())
        figures = {"configuration": "production" if os.environ.get("DATABASE_URL") else "embedded"}
        _callgrind(ready["pid"], "--instr=on")
        for number, phase in enumerate(("pipeline", "baseline"), start=1):
            (work / f"go-{phase}").touch()
            _wait_for(work / f"done-{phase}", process=measured)
            _callgrind(ready["pid"], "--dump")
            figures[phase] = _instructions(Path(f"{out}.{number}")) / ready["chunks"]
        _callgrind(ready["pid"], "--instr=off")
        (work / "stop").touch()
        measured.wait(300)
    finally:
        for process in (sandbox, measured):
            if process and process.poll() is None:
                process.kill()
                process.wait()
        shutil.rmtree(work, ignore_errors=True)
    _report(figures, ready["chunks"], args.json)


def _report(figures: dict, chunks: int, json_path: str | None) -> None:
    pipeline, baseline = figures["pipeline"], figures["baseline"]
    print(f"configuration: {figures['configuration']}; {chunks} chunks of 500 recipients, counted by callgrind")
    print(f"{'':42} {'instructions per chunk':>24}")
    print(f"{'pipeline: the chunk job (send_chunk)':42} {pipeline:>24,.0f}")
    print(f"{'baseline: line-bot-sdk multicast loop':42} {baseline:>24,.0f}")
    print(f"the pipeline's bookkeeping costs {pipeline / baseline:.1f}× the bare multicast")
    if json_path:
        Path(json_path).write_text(json.dumps({**figures, "chunks": chunks}, indent=2))


if __name__ == "__main__":
    main()
