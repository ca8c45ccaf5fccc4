"""The webhook endpoint: signatures, limits, de-duplication and concurrency, over real HTTP."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import requests
import sqlalchemy as sa

from saas.extensions import db
from saas.friends.models import Message
from saas.queues import WEBHOOKS, get_queue
from saas.tenancy.scoping import platform_scope, tenant_scope
from saas.webhooks.jobs import QUEUED_MARK_SECONDS
from saas.webhooks.models import WebhookEvent
from tests.webhooks.support import connect_clinic, post_events, run_jobs, text_event, webhook_url


def _events(clinic) -> list[WebhookEvent]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return list(db.session.scalars(sa.select(WebhookEvent).order_by(WebhookEvent.id)))


def test_a_signed_message_is_stored_and_handled(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "山田 花子")
    delivered = sandbox.send_text(channel, patient, "予約できますか？")
    assert delivered["status"] == 200
    [event] = _events(clinic)
    assert (event.event_type, event.state, event.line_user_id) == ("message", "pending", patient)
    assert event.reply_token and event.reply_token_expires_at > event.occurred_at
    run_jobs()
    [event] = _events(clinic)
    assert event.state == "handled" and event.handled_at is not None and event.attempts == 1
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(Message.text)) == "予約できますか？"


def test_a_wrong_signature_is_refused_and_nothing_is_stored(sandbox, live_server):
    clinic, _ = connect_clinic(sandbox, live_server)
    url = webhook_url(live_server, clinic)
    assert post_events(url, "not-the-channel-secret", [text_event("U" + "1" * 32, "hi")]).status_code == 401
    assert post_events(url, "", [text_event("U" + "1" * 32, "hi")], signature="bogus").status_code == 401
    unsigned = requests.post(url, json={"events": [text_event("U" + "1" * 32, "hi")]}, timeout=10)
    assert unsigned.status_code == 401
    assert _events(clinic) == []
    assert get_queue(WEBHOOKS).count == 0


def test_another_clinics_secret_does_not_open_this_clinics_webhook(sandbox, live_server):
    clinic_a, _ = connect_clinic(sandbox, live_server)
    clinic_b, _ = connect_clinic(sandbox, live_server)
    answer = post_events(
        webhook_url(live_server, clinic_a), clinic_b.line_channel_secret, [text_event("U" + "2" * 32, "x")]
    )
    assert answer.status_code == 401
    assert _events(clinic_a) == []


def test_an_unknown_webhook_key_is_not_found(live_server):
    answer = post_events(f"{live_server.url}/webhooks/line/no-such-key", "s", [])
    assert answer.status_code == 404


def test_the_connection_check_with_no_events_is_answered_200(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    assert sandbox.deliver(channel, [])["status"] == 200
    assert _events(clinic) == []


def test_a_body_over_the_limit_is_refused(app, sandbox, live_server):
    clinic, _ = connect_clinic(sandbox, live_server)
    limit = app.config["WEBHOOK_MAX_BYTES"]
    app.config["WEBHOOK_MAX_BYTES"] = 2000
    try:
        big = [text_event("U" + "3" * 32, "あ" * 1000)]
        answer = post_events(webhook_url(live_server, clinic), clinic.line_channel_secret, big)
    finally:
        app.config["WEBHOOK_MAX_BYTES"] = limit
    assert answer.status_code == 413
    assert _events(clinic) == []


def test_a_signed_body_that_is_not_json_is_a_bad_request(sandbox, live_server):
    from tests.webhooks.support import sign

    clinic, _ = connect_clinic(sandbox, live_server)
    body = b"{not json"
    answer = requests.post(
        webhook_url(live_server, clinic),
        data=body,
        headers={"x-line-signature": sign(clinic.line_channel_secret, body)},
        timeout=10,
    )
    assert answer.status_code == 400


def test_a_redelivered_event_is_stored_once(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "佐藤 一郎")
    first = sandbox.send_text(channel, patient, "こんにちは")
    again = sandbox.redeliver(channel, first["event"]["webhookEventId"])
    assert again["status"] == 200 and again["event"]["deliveryContext"]["isRedelivery"] is True
    run_jobs()
    assert len(_events(clinic)) == 1
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(Message.id))) == 1


def test_a_malformed_event_is_skipped_and_the_rest_of_the_batch_handled(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "鈴木 次郎")
    good_one, good_two = text_event(patient, "一通目"), text_event(patient, "二通目")
    malformed = {"type": "message", "timestamp": "yesterday"}  # no webhookEventId, bad timestamp
    assert sandbox.deliver(channel, [good_one, malformed, good_two, "junk"])["status"] == 200
    run_jobs()
    stored = _events(clinic)
    assert [e.webhook_event_id for e in stored] == [good_one["webhookEventId"], good_two["webhookEventId"]]
    assert all(e.state == "handled" for e in stored)
    with tenant_scope(clinic.id):
        texts = db.session.scalars(sa.select(Message.text).order_by(Message.id)).all()
    assert texts == ["一通目", "二通目"]


def test_a_thousand_concurrent_deliveries_are_each_stored_exactly_once(sandbox, live_server):
    clinic, _ = connect_clinic(sandbox, live_server)
    url, secret = webhook_url(live_server, clinic), clinic.line_channel_secret
    events = [text_event("U" + f"{i % 50:032x}", f"m{i}", event_id=f"01CONC{i:020d}") for i in range(1000)]
    # Every event is sent twice (a retry storm), from 32 threads at once.
    batches = [[event] for event in events] + [[event] for event in reversed(events)]

    started = time.monotonic()
    with requests.Session() as session, ThreadPoolExecutor(max_workers=32) as pool:
        adapter = requests.adapters.HTTPAdapter(pool_connections=32, pool_maxsize=32)
        session.mount("http://", adapter)
        statuses = list(pool.map(lambda batch: post_events(url, secret, batch, session=session).status_code, batches))
    # A waiting job's mark lasts QUEUED_MARK_SECONDS: a burst slower than that (a loaded machine) may take a second job.
    most_jobs = 1 + int((time.monotonic() - started) // QUEUED_MARK_SECONDS)

    assert statuses.count(200) == len(batches)
    with platform_scope("count across the test"):
        ids = db.session.scalars(sa.select(WebhookEvent.webhook_event_id)).all()
    assert len(ids) == 1000 and set(ids) == {e["webhookEventId"] for e in events}
    assert 1 <= get_queue(WEBHOOKS).count <= most_jobs  # the burst shares one waiting job: it takes every pending event


def test_deliveries_share_the_clinics_waiting_job_and_a_later_one_gets_its_own(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    url, secret = webhook_url(live_server, clinic), clinic.line_channel_secret
    patient = sandbox.add_patient(channel, "山田 花子")
    for n in range(3):
        assert post_events(url, secret, [text_event(patient, f"質問{n}")]).status_code == 200
    assert get_queue(WEBHOOKS).count == 1
    run_jobs()
    assert post_events(url, secret, [text_event(patient, "あとの質問")]).status_code == 200
    assert get_queue(WEBHOOKS).count == 1  # the first job has started: this one needs a job of its own
    run_jobs()
    with tenant_scope(clinic.id):
        texts = db.session.scalars(sa.select(Message.text).order_by(Message.id)).all()
    assert texts == ["質問0", "質問1", "質問2", "あとの質問"]
    assert {e.state for e in _events(clinic)} == {"handled"}


def test_a_changed_channel_secret_is_used_at_once(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    url, old_secret = webhook_url(live_server, clinic), clinic.line_channel_secret
    patient = sandbox.add_patient(channel, "山田 花子")
    assert post_events(url, old_secret, [text_event(patient, "前")]).status_code == 200  # the secret is kept now
    with tenant_scope(clinic.id):
        clinic.line_channel_secret = "c" * 32
        db.session.commit()
    assert post_events(url, "c" * 32, [text_event(patient, "後")]).status_code == 200
    assert post_events(url, old_secret, [text_event(patient, "古い鍵")]).status_code == 401
