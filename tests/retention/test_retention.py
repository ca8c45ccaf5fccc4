"""Retention: the daily job purges old webhook events and send bookkeeping, archives then blanks
old message bodies only when the clinic asked (never under five years), keeps everything recent,
active or another clinic's; the settings page refuses periods outside the bounds."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

from saas.common import utcnow
from saas.delivery.models import Delivery, DeliveryRecipient, DeliveryStatus
from saas.extensions import db
from saas.friends.models import Friend, Message
from saas.queues import get_redis
from saas.retention.jobs import purge_expired_data
from saas.retention.models import MESSAGE_BODY_MIN_DAYS, RetentionPolicy
from saas.retention.services import policy_for
from saas.tenancy.scoping import tenant_scope
from saas.webhooks.models import WebhookEvent
from tests.conftest import csrf_token
from tests.factories import gen_clinic, gen_user
from tests.helpers import login

NOW = utcnow()


def _event(n: int, *, days_old: int, state: str = "handled") -> WebhookEvent:
    return WebhookEvent(
        webhook_event_id=f"ev-{n}",
        event_type="message",
        occurred_at=NOW,
        payload={"n": n},
        state=state,
        received_at=NOW - timedelta(days=days_old),
    )


def _clinic_with_history(name: str):
    clinic = gen_clinic(name=name)
    with tenant_scope(clinic.id):
        friend = Friend(line_user_id=f"U{clinic.id:032d}", display_name="患者")
        db.session.add(friend)
        db.session.flush()
        old_event, new_event = _event(1, days_old=40), _event(2, days_old=3)
        db.session.add_all([old_event, new_event, _event(3, days_old=40, state="pending")])
        db.session.flush()
        db.session.add_all(
            [
                Message(
                    friend_id=friend.id,
                    direction="in",
                    kind="text",
                    text="昔の相談",
                    payload={"type": "text"},
                    webhook_event_id=old_event.id,
                    created_at=NOW - timedelta(days=MESSAGE_BODY_MIN_DAYS + 30),
                ),
                Message(
                    friend_id=friend.id,
                    direction="in",
                    kind="text",
                    text="最近の相談",
                    payload={"type": "text"},
                    webhook_event_id=new_event.id,
                    created_at=NOW - timedelta(days=10),
                ),
            ]
        )
        finished = Delivery(kind="broadcast", status=DeliveryStatus.DONE, finished_at=NOW - timedelta(days=200), sent=2)
        recent = Delivery(kind="broadcast", status=DeliveryStatus.DONE, finished_at=NOW - timedelta(days=5), sent=1)
        active = Delivery(kind="broadcast", status=DeliveryStatus.SENDING)
        db.session.add_all([finished, recent, active])
        db.session.flush()
        db.session.add_all(
            DeliveryRecipient(delivery_id=d.id, friend_id=n, line_user_id=f"U{n}")
            for n, d in enumerate((finished, finished, recent, active))
        )
        db.session.commit()
        return clinic, friend.id, (finished.id, recent.id, active.id)


def _snapshot(clinic):
    with tenant_scope(clinic.id):
        events = sorted(db.session.scalars(sa.select(WebhookEvent.webhook_event_id)))
        recipients = sorted(db.session.scalars(sa.select(DeliveryRecipient.delivery_id)))
        messages = [
            (m.text, m.webhook_event_id is None) for m in db.session.scalars(sa.select(Message).order_by(Message.id))
        ]
        return events, recipients, messages


def test_the_daily_job_purges_old_events_and_recipients_and_keeps_message_bodies_by_default(app, tmp_path):
    app.config["RETENTION_ARCHIVE_DIR"] = str(tmp_path)
    clinic, _, (finished, recent, active) = _clinic_with_history("A")
    purge_expired_data()
    events, recipients, messages = _snapshot(clinic)
    assert events == ["ev-2", "ev-3"]  # handled and 40 days old: gone; recent or still pending: kept
    assert recipients == sorted([recent, active])  # the finished one's two rows are gone
    assert messages == [("昔の相談", True), ("最近の相談", False)]  # bodies kept; the purged event's link is nulled
    with tenant_scope(clinic.id):
        assert db.session.get(Delivery, finished).sent == 2  # the delivery keeps its counts
    assert not list(tmp_path.rglob("*.gz"))
    assert _snapshot(clinic) == (events, recipients, messages)
    purge_expired_data()  # twice: nothing more
    assert _snapshot(clinic) == (events, recipients, messages)


def test_a_clinic_that_sets_a_body_period_gets_old_bodies_archived_then_blanked_and_others_untouched(app, tmp_path):
    app.config["RETENTION_ARCHIVE_DIR"] = str(tmp_path)
    clinic, friend_id, _ = _clinic_with_history("A")
    other, _, _ = _clinic_with_history("B")
    with tenant_scope(clinic.id):
        policy_for(clinic.id).message_body_days = MESSAGE_BODY_MIN_DAYS
        db.session.commit()
    purge_expired_data()
    assert [text for text, _ in _snapshot(clinic)[2]] == ["", "最近の相談"]
    assert [text for text, _ in _snapshot(other)[2]] == ["昔の相談", "最近の相談"]
    (archive,) = list(Path(tmp_path).rglob("*.jsonl.gz"))
    with gzip.open(archive, "rt", encoding="utf-8") as lines:
        archived = [json.loads(line) for line in lines]
    assert [(row["friend_id"], row["text"]) for row in archived] == [(friend_id, "昔の相談")]
    purge_expired_data()  # the watermark: nothing archived twice
    assert len(list(Path(tmp_path).rglob("*.jsonl.gz"))) == 1


def test_the_settings_page_refuses_periods_outside_the_bounds_and_saves_valid_ones(client):
    clinic = gen_clinic()
    login(client, gen_user("owner", clinic=clinic))
    url = f"/c/{clinic.slug}/retention"
    assert "データ保存期間" in client.get(url).get_data(as_text=True)
    too_short = {"message_body_days": "365", "webhook_event_days": "30", "delivery_recipient_days": "180"}
    refused = client.post(url, data={**too_short, "csrf_token": csrf_token(client)})
    assert refused.status_code == 422 and "メッセージ本文" in refused.get_data(as_text=True)
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(RetentionPolicy.message_body_days)) is None  # nothing half-applied
    valid = {"message_body_days": "2555", "webhook_event_days": "14", "delivery_recipient_days": "90"}
    assert client.post(url, data={**valid, "csrf_token": csrf_token(client)}).status_code == 302
    db.session.expire_all()
    with tenant_scope(clinic.id):
        policy = db.session.scalar(sa.select(RetentionPolicy))
        assert (policy.message_body_days, policy.webhook_event_days, policy.delivery_recipient_days) == (2555, 14, 90)
    forever = {**valid, "message_body_days": ""}
    client.post(url, data={**forever, "csrf_token": csrf_token(client)})
    db.session.expire_all()
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(RetentionPolicy.message_body_days)) is None


def test_staff_without_settings_rights_cannot_change_retention(client):
    clinic = gen_clinic()
    login(client, gen_user("sender", clinic=clinic))
    assert client.get(f"/c/{clinic.slug}/retention").status_code == 403


def test_the_purge_is_a_daily_cron_job():
    from rq.cron import CronScheduler

    scheduler = CronScheduler(connection=get_redis(), name="test-cron-retention")
    scheduler.load_config_from_file("saas.cron")
    assert "purge_expired_data" in {job.func_name.rsplit(".", 1)[-1] for job in scheduler.get_jobs()}


def test_one_clinic_whose_archive_cannot_be_written_does_not_stop_the_purge_of_the_others(app, tmp_path):
    """The daily job goes on past a clinic it cannot purge, then fails naming it (RQ retries it)."""
    import pytest

    from saas.retention.services import PurgeIncomplete

    app.config["RETENTION_ARCHIVE_DIR"] = str(tmp_path)
    broken, _, _ = _clinic_with_history("A")
    healthy, _, (finished, recent, active) = _clinic_with_history("B")
    for clinic in (broken, healthy):
        with tenant_scope(clinic.id):
            policy_for(clinic.id).message_body_days = MESSAGE_BODY_MIN_DAYS
            db.session.commit()
    (tmp_path / broken.slug).write_text("a file where the clinic's archive folder should be")
    with pytest.raises(PurgeIncomplete) as failure:
        purge_expired_data()
    assert failure.value.failed == [broken.id]
    assert [text for text, _ in _snapshot(broken)[2]] == ["昔の相談", "最近の相談"]  # nothing blanked unarchived
    events, recipients, messages = _snapshot(healthy)
    assert (events, recipients) == (["ev-2", "ev-3"], sorted([recent, active]))
    assert [text for text, _ in messages] == ["", "最近の相談"]
    result = app.test_cli_runner().invoke(args=["retention", "purge"])
    assert result.exit_code == 1
    assert f"clinic(s) {broken.id}" in result.output
