"""`flask worker` as a real process: its queues, and what it does when Redis restarts."""

from __future__ import annotations

import os
import subprocess
import sys

from saas.queues import get_queue, get_redis
from tests.faults.jobs import DONE_KEY, record
from tests.faults.processes import ROOT, wait_for


def done() -> list[str]:
    return [item.decode() for item in get_redis().lrange(DONE_KEY, 0, -1)]


def test_a_worker_survives_a_redis_restart_and_serves_jobs_enqueued_afterwards(private_redis, workers):
    worker = workers(queues="default", mode="simple")
    get_queue("default").enqueue(record, "before")
    wait_for(lambda: done() == ["before"], 120, "the job enqueued before the restart (and the worker started)")

    private_redis.restart()  # every queued job and registry is gone with it
    get_queue("default").enqueue(record, "after")

    wait_for(lambda: done() == ["after"], 60, "the job enqueued after the restart")
    assert worker.alive


def test_a_forking_worker_survives_a_redis_restart_too(private_redis, workers):
    worker = workers(queues="default", mode="fork")
    private_redis.restart()
    get_queue("default").enqueue(record, "after")
    wait_for(lambda: done() == ["after"], 60, "the job enqueued after the restart")
    assert worker.alive


def test_a_worker_serves_only_the_queues_it_was_given(private_redis, workers):
    workers(queues="urgent", mode="simple")
    get_queue("bulk").enqueue(record, "bulk")
    get_queue("urgent").enqueue(record, "urgent")
    wait_for(lambda: done() == ["urgent"], 120, "the urgent job (and the worker started)")
    assert get_queue("bulk").count == 1  # left for a worker that serves bulk


def test_an_unknown_queue_name_is_refused_with_the_known_ones(worker_env):
    answer = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "saas", "worker", "--queues", "urgent,mail"],
        cwd=ROOT,
        env={**os.environ, **worker_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert answer.returncode != 0
    assert "unknown queue mail" in answer.stderr and "webhooks" in answer.stderr


def test_jobs_carry_rqs_retry_with_back_off_and_a_short_timeout(private_redis):
    enqueued = get_queue("default").enqueue(record, "x")
    assert enqueued.retries_left == 6 and enqueued.retry_intervals == [2, 5, 15, 30, 60, 120]
    assert enqueued.timeout == 120
