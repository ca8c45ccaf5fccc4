"""``flask dev`` — the configuration ``make start`` runs — as a subprocess on free ports with its own
instance directory (SQLite, embedded Redis), for the tests that try the demo as a newcomer would."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import requests

from saas.config import ROOT

READY_TIMEOUT = 420  # seconds: migrations, demo tenants and 25 follows on a busy two-core machine
STOP_TIMEOUT = 60
# Settings of the test session that must not leak into the demo: it runs on its own embedded defaults.
_NOT_INHERITED = re.compile(
    r"^(DATABASE_URL|REDIS_URL|EMBEDDED_REDIS_PATH|PUBLIC_BASE_URL|PORT|SANDBOX_PORT|LINE_\w+|STRIPE_\w+)$"
)


class DevServer:
    """One run of ``flask dev --port 0 --sandbox-port 0`` whose output is collected line by line."""

    def __init__(self, instance_dir: Path) -> None:
        self.instance_dir = instance_dir
        self.lines: list[str] = []
        self._finished = False  # the output reached its end: flask dev exited
        self._changed = threading.Condition()
        env = {name: value for name, value in os.environ.items() if not _NOT_INHERITED.match(name)}
        env |= {"FLASK_APP": "saas", "SANDBOX_ENABLED": "1", "TSUNAGU_INSTANCE_DIR": str(instance_dir)}
        self.process = subprocess.Popen(
            [str(Path(sys.executable).parent / "flask"), "dev", "--port", "0", "--sandbox-port", "0"],
            cwd=ROOT,
            env={**env, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        )
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.wait_for_line(r"準備完了 / Ready: (\S+)", READY_TIMEOUT)
        self.portal_url = ready.group(1)
        self.sandbox_url = self.wait_for_line(r"Sandbox phone:\s+(\S+)/_sandbox/phone", 1).group(1)

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._finished = True
            self._changed.notify_all()

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match:
        """The first output line matching ``pattern``, waiting up to ``timeout`` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines:
                    if match := re.search(pattern, line):
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._finished:
                    raise AssertionError(f"flask dev never printed {pattern!r}:\n" + "\n".join(self.lines[-60:]))
                self._changed.wait(min(remaining, 1))

    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def processes(self) -> list[psutil.Process]:
        """Every process ``flask dev`` started (its descendants) and the embedded Redis serving its instance."""
        return psutil.Process(self.process.pid).children(recursive=True) + embedded_redis_servers(self.instance_dir)

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` (SIGTERM, or SIGINT as Ctrl+C does) and wait for ``flask dev`` to exit."""
        self.process.send_signal(signum)
        return self.process.wait(timeout=STOP_TIMEOUT)

    def get(self, path: str) -> requests.Response:
        return requests.get(self.sandbox_url + path, timeout=10)


def embedded_redis_servers(instance_dir: Path) -> list[psutil.Process]:
    """redis-server processes keeping their data in ``instance_dir`` (redis runs in its data directory)."""
    found = []
    for process in psutil.process_iter(["name", "cwd"]):
        cwd = process.info.get("cwd") or ""
        if "redis-server" in (process.info.get("name") or "") and cwd.startswith(str(instance_dir)):
            found.append(process)
    return found


def wait_until(condition, timeout: float, what: str):
    """Poll ``condition`` until it returns something truthy; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.25)
