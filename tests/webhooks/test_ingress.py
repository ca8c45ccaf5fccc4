"""The webhook request path before Flask: one statement, no session, the portal untouched."""

from __future__ import annotations

import os
import runpy
from pathlib import Path

import requests

from saas.extensions import db
from saas.queues import WEBHOOKS, get_queue
from tests.webhooks.support import connect_clinic, post_events, text_event, webhook_url
from tests.webhooks.test_handling_cost import StatementLog

ROOT = Path(__file__).resolve().parents[2]


def test_a_delivery_costs_one_insert_and_sets_no_session_cookie(sandbox, live_server):
    clinic, _ = connect_clinic(sandbox, live_server)
    url = webhook_url(live_server, clinic)
    # the first delivery caches the secret and enqueues the job the second one shares
    post_events(url, clinic.line_channel_secret, [text_event("U" + "1" * 32, "最初")])
    with StatementLog(db.engine) as log:
        answer = post_events(url, clinic.line_channel_secret, [text_event("U" + "1" * 32, "予約したいです")])
    assert answer.status_code == 200
    assert [s.split()[0:3] for s in log.statements] == [["INSERT", "INTO", "webhook_event"]], log.statements
    assert "Set-Cookie" not in answer.headers and answer.content == b""
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert get_queue(WEBHOOKS).count == 1  # the first delivery's job takes the second's event too


def test_other_methods_and_paths_under_webhooks_still_reach_flask(sandbox, live_server):
    clinic, _ = connect_clinic(sandbox, live_server)
    url = webhook_url(live_server, clinic)
    assert requests.get(url, timeout=10).status_code == 405
    assert post_events(url + "/extra", clinic.line_channel_secret, []).status_code == 404
    assert requests.get(f"{live_server.url}/healthz", timeout=10).status_code == 200


def test_a_database_failure_is_answered_500_so_line_redelivers(sandbox, live_server, monkeypatch):
    from saas.webhooks import ingest

    clinic, _ = connect_clinic(sandbox, live_server)

    def refuse(*args):
        raise ConnectionError("database unreachable")

    monkeypatch.setattr(ingest, "store_events", refuse)
    answer = post_events(
        webhook_url(live_server, clinic), clinic.line_channel_secret, [text_event("U" + "3" * 32, "x")]
    )
    assert answer.status_code == 500


def test_the_access_log_is_off_unless_asked_for(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("WEB_ACCESS_LOG", raising=False)
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["accesslog"] is None
    monkeypatch.setenv("WEB_ACCESS_LOG", "-")
    assert runpy.run_path(str(ROOT / "gunicorn.conf.py"))["accesslog"] == "-"


def test_the_web_process_runs_one_process_per_core_unless_told(monkeypatch):
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert settings["workers"] == os.cpu_count() and settings["worker_class"] == "gthread"
