"""The ``Procfile``'s processes, read from the file itself, and running them as children (``flask dev``).

Each child runs through ``/bin/sh -c`` as a Procfile runner would (so ``${REDIS_URL}`` and
``${PORT:-5000}`` expand), with this virtual environment's ``bin`` first on ``PATH``, in its own
process group: stopping a child stops everything it forked (RQ's work horses, scheduler).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import click

from saas.config import ROOT

PROCFILE = ROOT / "Procfile"
STOP_TIMEOUT = 20  # seconds a child may take to finish its current job after SIGTERM
_ENTRY = re.compile(r"^([A-Za-z0-9_-]+):\s*(.+)$")


def procfile_entries(path: Path = PROCFILE) -> list[tuple[str, str]]:
    """``(name, command)`` for each line of the Procfile, in file order (comments and blanks skipped)."""
    entries = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _ENTRY.match(line.strip())
        if match is None:
            raise ValueError(f"{path}:{number}: not a 'name: command' line: {line!r}")
        entries.append((match.group(1), match.group(2)))
    return entries


class Children:
    """Processes started from Procfile commands; ``stop()`` ends all of them and their descendants."""

    def __init__(self) -> None:
        self.processes: dict[str, subprocess.Popen] = {}

    @property
    def names(self) -> list[str]:
        return list(self.processes)

    def start(self, name: str, command: str, env: dict[str, str]) -> subprocess.Popen:
        """Start ``command`` in its own process group, its output prefixed with ``name``."""
        env = {**env, "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])}
        process = subprocess.Popen(
            ["/bin/sh", "-c", f"exec {command}"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            text=True,
            errors="replace",
        )
        self.processes[name] = process
        threading.Thread(target=_relay, args=(name, process), daemon=True).start()
        click.echo(f"{name:>8} | 起動 / started: {command}")
        return process

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM every child's process group, wait for them, SIGKILL whatever is left."""
        for process in self.processes.values():
            _signal_group(process, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait()
            _signal_group(process, signal.SIGKILL)  # descendants that outlived their parent


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def _relay(name: str, process: subprocess.Popen) -> None:
    for line in process.stdout:
        click.echo(f"{name:>8} | {line.rstrip()}")
