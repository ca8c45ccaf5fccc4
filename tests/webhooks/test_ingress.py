"""The webhook request path before Flask: one statement, no session, the portal untouched."""

from __future__ import annotations

import os
import runpy
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import redis
import requests
import sqlalchemy as sa

from saas.extensions import db
from saas.queues import WEBHOOKS, get_queue
from saas.tenancy.scoping import tenant_scope
from saas.webhooks.models import WebhookEvent
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

    # the shared statement of the process's writer fails, and so does storing the delivery alone
    monkeypatch.setattr(ingest, "_insert_group", refuse)
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


def _stored(clinic) -> list[str]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return list(db.session.scalars(sa.select(WebhookEvent.webhook_event_id).order_by(WebhookEvent.id)))


def test_with_redis_down_the_delivery_is_stored_answered_500_and_its_redelivery_stored_once(
    app, sandbox, live_server, monkeypatch
):
    clinic, _ = connect_clinic(sandbox, live_server)
    url, secret = webhook_url(live_server, clinic), clinic.line_channel_secret
    event = text_event("U" + "4" * 32, "Redisが落ちている間のメッセージ")
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setitem(app.extensions, "tsunagu_redis", redis.Redis(port=port, socket_connect_timeout=1))
    assert post_events(url, secret, [event]).status_code == 500  # LINE redelivers
    assert _stored(clinic) == [event["webhookEventId"]]  # nothing lost: the cron sweeper enqueues it
    monkeypatch.undo()
    assert post_events(url, secret, [event]).status_code == 200
    assert _stored(clinic) == [event["webhookEventId"]]


def test_concurrent_deliveries_of_two_clinics_each_land_in_their_own_clinic(sandbox, live_server):
    first, _ = connect_clinic(sandbox, live_server, "一番目クリニック")
    second, _ = connect_clinic(sandbox, live_server, "二番目クリニック")
    deliveries = [
        (clinic, text_event("U" + f"{i:032x}", f"m{i}", event_id=f"01TWO{clinic.id:04d}{i:016d}"))
        for i in range(100)
        for clinic in (first, second)
    ]
    with requests.Session() as session, ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(
            pool.map(
                lambda d: post_events(
                    webhook_url(live_server, d[0]), d[0].line_channel_secret, [d[1]], session=session
                ),
                deliveries,
            )
        )
    assert {answer.status_code for answer in answers} == {200}
    for clinic in (first, second):
        expected = {event["webhookEventId"] for owner, event in deliveries if owner is clinic}
        assert set(_stored(clinic)) == expected
    assert get_queue(WEBHOOKS).count == 2  # one waiting job per clinic
