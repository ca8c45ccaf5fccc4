"""Reminders go out exactly once at their hour, across repeated scans and worker restarts."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import sqlalchemy as sa

from saas.booking import services
from saas.booking.models import Booking, BookingStatus
from saas.common import utcnow
from saas.extensions import db
from saas.friends.models import Friend
from saas.reminders import jobs, rules
from saas.reminders.models import ReminderRule, RuleReminder
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.booking.support import booking_clinic, tomorrow_at
from tests.helpers import assert_rows_isolated
from tests.webhooks.support import run_jobs


def _reminders(sandbox, channel, patient) -> list[str]:
    texts = [m["message"].get("text", "") for m in sandbox.inbox(channel, patient)]
    return [t for t in texts if t.startswith("【明日のご予約】")]


def _friend_patient(sandbox, channel, name="田中 太郎") -> str:
    patient = sandbox.add_patient(channel, name)
    sandbox.follow(channel, patient)
    run_jobs()
    return patient


def test_the_day_before_reminder_is_sent_once_at_the_clinic_hour(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = _friend_patient(sandbox, channel)
    with tenant_scope(clinic.id):
        services.get_settings(clinic.id).reminder_hour = 18
        booking = services.book(clinic, line_user_id=patient, patient_name="田中 太郎", starts_at=tomorrow_at(clinic))
        due, booking_id = booking.reminder_at, booking.id
    assert (due + timedelta(hours=9)).hour == 18  # 18:00 in Japan, stored as UTC

    assert jobs.scan_due(now=due - timedelta(minutes=1)) == {"bookings": 0, "rules": 0}
    run_jobs()
    assert _reminders(sandbox, channel, patient) == []

    jobs.scan_due(now=due)
    jobs.scan_due(now=due + timedelta(minutes=1))  # a second scan before the worker ran
    run_jobs()
    jobs.scan_due(now=due + timedelta(minutes=5))
    run_jobs()
    assert len(_reminders(sandbox, channel, patient)) == 1
    with tenant_scope(clinic.id):
        db.session.expire_all()
        assert db.session.get(Booking, booking_id).reminder_state == "sent"


def test_a_worker_dying_after_the_push_does_not_send_the_reminder_twice(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = _friend_patient(sandbox, channel)
    with tenant_scope(clinic.id):
        booking = services.book(clinic, line_user_id=patient, patient_name="x", starts_at=tomorrow_at(clinic))
        due, booking_id = booking.reminder_at, booking.id
    jobs.scan_due(now=due)
    run_jobs()
    # The worker pushed, then died before recording it: the row is left claimed ("sending").
    with tenant_scope(clinic.id):
        db.session.execute(
            sa.update(Booking).where(Booking.id == booking_id).values(reminder_state="sending", reminder_claimed_at=due)
        )
        db.session.commit()
    assert jobs.scan_due(now=due + timedelta(minutes=3))["bookings"] == 0  # a fresh claim is left alone
    assert jobs.scan_due(now=due + timedelta(minutes=15))["bookings"] == 1  # a stale claim is taken over
    run_jobs()  # a new worker
    assert len(_reminders(sandbox, channel, patient)) == 1
    retry_key_uses = [r for r in sandbox.requests(channel) if r["operation"] == "pushMessage" and r["status"] == 409]
    assert len(retry_key_uses) == 1  # LINE answered "already accepted" for the repeated key
    with tenant_scope(clinic.id):
        db.session.expire_all()
        assert db.session.get(Booking, booking_id).reminder_state == "sent"


def test_a_cancelled_booking_gets_no_reminder(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = _friend_patient(sandbox, channel)
    with tenant_scope(clinic.id):
        booking = services.book(clinic, line_user_id=patient, patient_name="x", starts_at=tomorrow_at(clinic))
        services.cancel(booking, by="patient")
        due = booking.reminder_at
    jobs.scan_due(now=due)
    run_jobs()
    assert _reminders(sandbox, channel, patient) == []


def test_a_recall_rule_reminds_once_n_months_after_the_last_visit(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = _friend_patient(sandbox, channel, "定期 検診")
    today = utcnow().date()
    visited_on = rules.add_months(today, -3)
    with tenant_scope(clinic.id):
        friend = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == patient))
        booking = services.book(clinic, line_user_id=patient, patient_name="x", starts_at=tomorrow_at(clinic))
        booking.starts_at = datetime.combine(visited_on, datetime.min.time()).replace(hour=10)
        booking.status, booking.friend_id = BookingStatus.VISITED, friend.id
        db.session.add(
            ReminderRule(
                clinic_id=clinic.id, name="3か月検診", months_after=3, send_hour=0, message="定期検診の時期です。"
            )
        )
        db.session.commit()
    now = utcnow().replace(hour=3)  # noon in Japan
    for _ in range(2):
        jobs.scan_due(now=now)
        run_jobs()
    texts = [m["message"].get("text") for m in sandbox.inbox(channel, patient)]
    assert texts.count("定期検診の時期です。") == 1


def test_reminder_rows_are_isolated_between_clinics(sandbox, live_server):
    ids = []
    for name in ("A院", "B院"):
        clinic, channel, _ = booking_clinic(sandbox, live_server, name=name)
        patient = _friend_patient(sandbox, channel)
        with tenant_scope(clinic.id):
            friend_id = db.session.scalar(sa.select(Friend.id).where(Friend.line_user_id == patient))
            rule = ReminderRule(clinic_id=clinic.id, name="r", message="m")
            db.session.add(rule)
            db.session.flush()
            reminder = RuleReminder(clinic_id=clinic.id, rule_id=rule.id, friend_id=friend_id, due_on=date.today())
            db.session.add(reminder)
            db.session.commit()
            ids.append({ReminderRule: rule.id, RuleReminder: reminder.id})
    for model in (ReminderRule, RuleReminder):
        with platform_scope("test"):
            rows = [db.session.get(model, found[model]) for found in ids]
        assert_rows_isolated(model, *rows)
