"""Native booking: seats taken by the database, cancel by postback, changes, closures, no-shows."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.booking import services
from saas.booking.models import Booking, BookingSettings, BookingStatus, Slot
from saas.extensions import db
from saas.schedule.models import Closure
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.booking.support import booking_clinic, tomorrow_at
from tests.factories import gen_user
from tests.helpers import assert_rows_isolated, login
from tests.webhooks.support import run_jobs


def _seats(clinic, starts_at) -> tuple[int, int]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        slot = db.session.scalar(sa.select(Slot).where(Slot.starts_at == starts_at))
        return slot.booked_count, slot.capacity


def test_two_patients_racing_for_the_last_place_get_one_booking_and_one_full_answer(app, sandbox, live_server):
    clinic, _, _ = booking_clinic(sandbox, live_server, capacity=2)
    at = tomorrow_at(clinic)
    with tenant_scope(clinic.id):
        services.book(clinic, line_user_id="U" + "1" * 32, patient_name="先客", starts_at=at)
    clinic_id, barrier, outcomes = clinic.id, threading.Barrier(2, timeout=20), []

    def race(user_id: str) -> None:
        with app.app_context(), tenant_scope(clinic_id):
            own_clinic = db.session.get(Clinic, clinic_id)  # each thread its own session, as two requests
            barrier.wait()
            try:
                services.book(own_clinic, line_user_id=user_id, patient_name=user_id[:6], starts_at=at)
                outcomes.append("booked")
            except services.SlotFull as exc:
                outcomes.append(exc.message)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=race, args=("U" + c * 32,)) for c in "ab"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes, key=len) == [
        "booked",
        "申し訳ありません。この時間は満席になりました。別の時間をお選びください。",
    ]
    assert "満席" in outcomes[-1] or "満席" in outcomes[0]
    assert _seats(clinic, at) == (2, 2)
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(Booking.id))) == 2
        full = [s for s in services.open_slots(clinic, at.date(), at.date()) if s.starts_at == at][0]
        assert full.remaining == 0


def test_cancel_by_postback_frees_the_place(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "山田 花子")
    sandbox.follow(channel, patient)
    run_jobs()
    at = tomorrow_at(clinic, 9, 30)
    with tenant_scope(clinic.id):
        booking = services.book(clinic, line_user_id=patient, patient_name="山田 花子", starts_at=at)
        booking_id = booking.id
    assert _seats(clinic, at) == (1, 1)
    sandbox.postback(channel, patient, f"booking:cancel:{booking_id}")
    run_jobs()
    question = sandbox.inbox(channel, patient)[-1]["message"]
    assert question["type"] == "template" and "キャンセルしますか" in question["template"]["text"]
    sandbox.postback(channel, patient, f"booking:cancel:{booking_id}:yes")
    run_jobs()
    assert "キャンセルしました" in sandbox.inbox(channel, patient)[-1]["message"]["text"]
    assert _seats(clinic, at) == (0, 1)
    with tenant_scope(clinic.id):
        assert db.session.get(Booking, booking_id).status == BookingStatus.CANCELLED
        services.book(clinic, line_user_id="U" + "9" * 32, patient_name="次の方", starts_at=at)
    assert _seats(clinic, at) == (1, 1)


def test_a_postback_for_someone_elses_booking_changes_nothing(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "他人")
    sandbox.follow(channel, patient)
    at = tomorrow_at(clinic)
    with tenant_scope(clinic.id):
        booking_id = services.book(clinic, line_user_id="U" + "2" * 32, patient_name="本人", starts_at=at).id
    sandbox.postback(channel, patient, f"booking:cancel:{booking_id}:yes")
    run_jobs()
    assert "見つかりません" in sandbox.inbox(channel, patient)[-1]["message"]["text"]
    assert _seats(clinic, at) == (1, 1)


def test_a_slot_outside_hours_or_on_a_closure_cannot_be_booked(sandbox, live_server):
    clinic, _, _ = booking_clinic(sandbox, live_server)
    with tenant_scope(clinic.id):
        with pytest.raises(services.BookingRefused, match="診療時間外か休診"):
            services.book(clinic, line_user_id="U" + "3" * 32, patient_name="x", starts_at=tomorrow_at(clinic, 13))
        day = tomorrow_at(clinic).date()
        db.session.add(Closure(clinic_id=clinic.id, starts_on=day, ends_on=day, reason="学会"))
        db.session.commit()
        assert services.open_slots(clinic, day, day) == []
        with pytest.raises(services.BookingRefused):
            services.book(clinic, line_user_id="U" + "3" * 32, patient_name="x", starts_at=tomorrow_at(clinic))


def test_a_closure_added_after_a_booking_warns_staff_who_can_notify_the_patient(client, sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "佐藤 一郎")
    sandbox.follow(channel, patient)
    run_jobs()
    at = tomorrow_at(clinic)
    with tenant_scope(clinic.id):
        booking_id = services.book(clinic, line_user_id=patient, patient_name="佐藤 一郎", starts_at=at).id
        db.session.add(Closure(clinic_id=clinic.id, starts_on=at.date(), ends_on=at.date(), reason="院長不在"))
        db.session.commit()
    staff = gen_user("admin", clinic=clinic)
    login(client, staff)
    page = client.get(f"/c/{clinic.slug}/booking/").get_data(as_text=True)
    assert 'data-testid="closure-conflicts"' in page and "佐藤 一郎" in page
    from tests.conftest import csrf_token

    answer = client.post(
        f"/c/{clinic.slug}/booking/{booking_id}/notify-closure", data={"csrf_token": csrf_token(client)}
    )
    assert answer.status_code == 302
    page = client.get(f"/c/{clinic.slug}/booking/").get_data(as_text=True)
    assert 'data-testid="notice-queued"' in page and "LINEで休診を知らせる" not in page  # queued, not pushed yet
    run_jobs()
    notice = sandbox.inbox(channel, patient)[-2]
    assert notice["via"] == "push" and "休診となりました" in notice["message"]["text"]
    page = client.get(f"/c/{clinic.slug}/booking/?day={at.date().isoformat()}").get_data(as_text=True)
    assert 'data-testid="closure-conflicts"' not in page and 'data-testid="closure-notice-sent"' in page


def test_staff_mark_a_no_show_and_see_the_week(client, sandbox, live_server):
    clinic, _, _ = booking_clinic(sandbox, live_server)
    at = tomorrow_at(clinic, 11)
    with tenant_scope(clinic.id):
        booking_id = services.book(clinic, line_user_id="U" + "4" * 32, patient_name="鈴木 次郎", starts_at=at).id
    login(client, gen_user("admin", clinic=clinic))
    from tests.conftest import csrf_token

    client.post(
        f"/c/{clinic.slug}/booking/{booking_id}/status", data={"status": "no_show", "csrf_token": csrf_token(client)}
    )
    week = client.get(f"/c/{clinic.slug}/booking/?view=week&day={at.date().isoformat()}").get_data(as_text=True)
    assert "鈴木 次郎" in week and "無断キャンセル" in week
    with tenant_scope(clinic.id):
        db.session.expire_all()
        assert db.session.get(Booking, booking_id).status == BookingStatus.NO_SHOW


def test_changing_a_booking_moves_the_seat(sandbox, live_server):
    clinic, _, _ = booking_clinic(sandbox, live_server)
    first, second = tomorrow_at(clinic, 9), tomorrow_at(clinic, 10) + timedelta(days=1)
    with tenant_scope(clinic.id):
        booking = services.book(clinic, line_user_id="U" + "5" * 32, patient_name="a", starts_at=first)
        services.change(clinic, booking, second)
    assert _seats(clinic, first) == (0, 1) and _seats(clinic, second) == (1, 1)


def test_booking_rows_are_isolated_between_clinics(sandbox, live_server):
    ids = []
    for name in ("A院", "B院"):
        clinic, _, _ = booking_clinic(sandbox, live_server, name=name)
        with tenant_scope(clinic.id):
            booking = services.book(
                clinic, line_user_id="U" + "6" * 32, patient_name=name, starts_at=tomorrow_at(clinic)
            )
            ids.append(
                {Booking: booking.id, Slot: booking.slot_id, BookingSettings: services.get_settings(clinic.id).id}
            )
    for model in (Booking, Slot, BookingSettings):
        with platform_scope("test"):
            rows = [db.session.get(model, found[model]) for found in ids]
        assert_rows_isolated(model, *rows)
