"""Notices staff send from the booking page (closure, cancellation) are pushed by workers:
queued in the request, shown as 送信予約済み, retried with the same retry key, delivered once."""

from __future__ import annotations

import sqlalchemy as sa

from saas.booking import notices, services
from saas.booking.models import Booking
from saas.extensions import db
from saas.queues import get_queue
from saas.quota.usage import usage
from saas.schedule.models import Closure
from saas.tenancy.scoping import tenant_scope
from tests.booking.support import booking_clinic, retries_due_now, tomorrow_at
from tests.conftest import csrf_token
from tests.factories import gen_user
from tests.helpers import login
from tests.webhooks.support import run_jobs


def _booked_patient(sandbox, live_server, name: str) -> tuple:
    """(clinic, channel, patient, booking id, starts_at): a following patient booked for tomorrow."""
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, name)
    sandbox.follow(channel, patient)
    run_jobs()
    at = tomorrow_at(clinic)
    with tenant_scope(clinic.id):
        booking_id = services.book(clinic, line_user_id=patient, patient_name=name, starts_at=at).id
    return clinic, channel, patient, booking_id, at


def _pushes(sandbox, channel: str, patient: str) -> list[dict]:
    return [
        r
        for r in sandbox.requests(channel)
        if r["operation"] == "pushMessage" and (r["body"] or {}).get("to") == patient
    ]


def _texts(sandbox, channel: str, patient: str, needle: str) -> list[str]:
    texts = [entry["message"].get("text", "") for entry in sandbox.inbox(channel, patient)]
    return [text for text in texts if needle in text]


def _used(clinic) -> int:
    with tenant_scope(clinic.id):
        return usage(clinic.id).used


def _day_page(client, clinic, at) -> str:
    return client.get(f"/c/{clinic.slug}/booking/?day={at.date().isoformat()}").get_data(as_text=True)


def test_staff_cancel_is_told_to_the_patient_by_a_worker_after_a_line_5xx_exactly_once(client, sandbox, live_server):
    clinic, channel, patient, booking_id, at = _booked_patient(sandbox, live_server, "高橋 美咲")
    used_before = _used(clinic)
    login(client, gen_user("admin", clinic=clinic))
    sandbox.configure(channel, fail_next=[500])

    client.post(f"/c/{clinic.slug}/booking/{booking_id}/cancel", data={"csrf_token": csrf_token(client)})
    assert not _pushes(sandbox, channel, patient)  # nothing sent inside the request
    assert 'data-testid="cancellation-notice-queued"' in _day_page(client, clinic, at)

    run_jobs()  # LINE answers 500: the job waits for its retry
    assert _texts(sandbox, channel, patient, "キャンセルしました") == []
    assert 'data-testid="cancellation-notice-queued"' in _day_page(client, clinic, at)
    assert retries_due_now() == 1
    run_jobs()

    assert len(_texts(sandbox, channel, patient, "キャンセルしました")) == 1
    attempts = _pushes(sandbox, channel, patient)
    assert [a["status"] for a in attempts] == [500, 200]
    assert len({a["retry_key"] for a in attempts}) == 1  # the retry reused the key
    assert _used(clinic) == used_before + 1  # the failed attempt gave its message back
    assert 'data-testid="cancellation-notice-sent"' in _day_page(client, clinic, at)


def test_a_closure_notice_job_run_twice_or_after_a_5xx_reaches_the_patient_once(client, sandbox, live_server):
    clinic, channel, patient, booking_id, at = _booked_patient(sandbox, live_server, "伊藤 健")
    with tenant_scope(clinic.id):
        db.session.add(Closure(clinic_id=clinic.id, starts_on=at.date(), ends_on=at.date(), reason="院長不在"))
        db.session.commit()
    login(client, gen_user("admin", clinic=clinic))
    sandbox.configure(channel, fail_next=[503])
    for _ in range(2):  # a double click queues one notice
        client.post(f"/c/{clinic.slug}/booking/{booking_id}/notify-closure", data={"csrf_token": csrf_token(client)})
    assert get_queue("urgent").count == 1

    run_jobs()
    page = _day_page(client, clinic, at)
    assert 'data-testid="notice-queued"' in page and "LINEで休診を知らせる" not in page
    retries_due_now()
    get_queue("urgent").enqueue(notices.send_closure_notice, clinic.id, booking_id)  # a duplicate job too
    run_jobs()

    assert len(_texts(sandbox, channel, patient, "休診となりました")) == 1
    with tenant_scope(clinic.id):
        db.session.expire_all()
        assert db.session.get(Booking, booking_id).closure_notified_at is not None
    assert 'data-testid="closure-notice-sent"' in _day_page(client, clinic, at)


def test_a_notice_line_refuses_is_shown_as_failed_and_can_be_sent_again(client, sandbox, live_server):
    clinic, channel, patient, booking_id, at = _booked_patient(sandbox, live_server, "渡辺 直子")
    with tenant_scope(clinic.id):
        db.session.add(Closure(clinic_id=clinic.id, starts_on=at.date(), ends_on=at.date(), reason="停電"))
        db.session.commit()
    login(client, gen_user("admin", clinic=clinic))
    sandbox.configure(channel, fail_next=[400])  # not retryable
    client.post(f"/c/{clinic.slug}/booking/{booking_id}/notify-closure", data={"csrf_token": csrf_token(client)})
    run_jobs()
    page = _day_page(client, clinic, at)
    assert 'data-testid="notice-failed"' in page and "LINEで休診を知らせる" in page

    client.post(f"/c/{clinic.slug}/booking/{booking_id}/notify-closure", data={"csrf_token": csrf_token(client)})
    run_jobs()
    assert len(_texts(sandbox, channel, patient, "休診となりました")) == 1


def test_notice_jobs_only_touch_their_own_clinic(sandbox, live_server):
    clinic, _, _, booking_id, _ = _booked_patient(sandbox, live_server, "A院の患者")
    other, _, _, _, _ = _booked_patient(sandbox, live_server, "B院の患者")
    # A job given another clinic's id finds no booking under that clinic's scope: nothing is sent.
    assert notices.send_closure_notice(other.id, booking_id) is False
    assert notices.send_cancellation_notice(other.id, booking_id) is False
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(Booking.closure_notified_at).where(Booking.id == booking_id)) is None
