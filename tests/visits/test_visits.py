"""Visits kept as history: the CSV import writes one row per visit day, 最終来院日 follows the
newest, the friend page lists them, staff record one at the desk, and the segment form's 「来院」
(and recall reminders) read them."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from saas.common import to_local, utcnow
from saas.delivery import audience
from saas.extensions import db
from saas.fields import services as fields
from saas.fields.models import FriendField
from saas.friends.models import Friend
from saas.reminders import rules
from saas.tenancy.scoping import tenant_scope
from saas.visits.models import Visit
from tests.conftest import csrf_token
from tests.factories import gen_clinic, gen_user
from tests.helpers import login

TARO, HANAKO = "U" + "c" * 32, "U" + "d" * 32


def _today():
    """The clinic's date now (a run that crosses midnight in Japan must not use the day it started)."""
    return to_local(utcnow()).date()


def _clinic() -> tuple:
    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        db.session.add_all(
            [
                Friend(line_user_id=TARO, display_name="田中 太郎", attributes={}, consent_marketing=True),
                Friend(line_user_id=HANAKO, display_name="山田 花子", attributes={}, consent_marketing=True),
            ]
        )
        fields.save_field(FriendField(), key="last_visit", label="最終来院日", kind="date")
        db.session.commit()
        ids = {f.line_user_id: f.id for f in db.session.scalars(sa.select(Friend))}
    return clinic, ids


def _import(client, clinic, text: str):
    data = {"csrf_token": csrf_token(client), "text": text, "action": "apply"}
    return client.post(f"/c/{clinic.slug}/friends/import", data=data)


def _history(clinic, friend_id: int) -> list[tuple[str, str]]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        rows = db.session.scalars(sa.select(Visit).where(Visit.friend_id == friend_id).order_by(Visit.visited_on))
        return [(v.visited_on.isoformat(), v.source) for v in rows]


def _count(clinic, segment: dict) -> int:
    with tenant_scope(clinic.id):
        return audience.count_audience("segment", segment).matched


def test_imported_visits_are_kept_as_history_and_last_visit_follows_the_newest(client):
    clinic, ids = _clinic()
    login(client, gen_user("admin", clinic=clinic))
    assert _import(client, clinic, f"LINEユーザーID,来院日\n{TARO},2025-03-01\n{TARO},2025-06-10\n").status_code == 200
    assert _import(client, clinic, f"LINEユーザーID,来院日\n{TARO},2025-01-05\n{TARO},2025-06-10\n").status_code == 200
    assert _history(clinic, ids[TARO]) == [("2025-01-05", "import"), ("2025-03-01", "import"), ("2025-06-10", "import")]
    with tenant_scope(clinic.id):
        assert fields.values_by_key(db.session.get(Friend, ids[TARO])) == {"last_visit": "2025-06-10"}
        assert rules.last_visits(utcnow()) == {ids[TARO]: date(2025, 6, 10)}
    page = client.get(f"/c/{clinic.slug}/friends/{ids[TARO]}").get_data(as_text=True)
    assert "来院履歴" in page and "2025/06/10" in page and "2025/01/05" in page and "CSV取り込み" in page


def test_a_visit_in_the_future_is_refused_for_the_whole_file(client):
    clinic, ids = _clinic()
    login(client, gen_user("admin", clinic=clinic))
    later = (_today() + timedelta(days=3)).isoformat()
    answer = _import(client, clinic, f"LINEユーザーID,来院日\n{HANAKO},2025-03-01\n{TARO},{later}\n")
    assert answer.status_code == 400 and "未来の日付です" in answer.get_data(as_text=True)
    assert _history(clinic, ids[HANAKO]) == []


def test_staff_record_a_visit_at_the_desk_and_remove_one_recorded_by_mistake(client):
    clinic, ids = _clinic()
    login(client, gen_user("responder", clinic=clinic))
    url = f"/c/{clinic.slug}/visits/friend/{ids[HANAKO]}"
    assert client.post(url, data={"csrf_token": csrf_token(client)}).status_code == 302
    client.post(url, data={"visited_on": "2025-02-02", "csrf_token": csrf_token(client)})
    today = _today()
    future = (today + timedelta(days=1)).isoformat()
    client.post(url, data={"visited_on": future, "csrf_token": csrf_token(client)})
    assert _history(clinic, ids[HANAKO]) == [("2025-02-02", "desk"), (today.isoformat(), "desk")]
    with tenant_scope(clinic.id):
        today_visit = db.session.scalar(sa.select(Visit.id).where(Visit.visited_on == today))
    client.post(f"/c/{clinic.slug}/visits/{today_visit}/delete", data={"csrf_token": csrf_token(client)})
    assert _history(clinic, ids[HANAKO]) == [("2025-02-02", "desk")]
    with tenant_scope(clinic.id):
        assert fields.values_by_key(db.session.get(Friend, ids[HANAKO])) == {"last_visit": "2025-02-02"}


def test_the_segment_forms_visit_row_means_a_visit_not_the_last_message(client):
    clinic, ids = _clinic()
    login(client, gen_user("admin", clinic=clinic))
    long_ago, recent = (_today() - timedelta(days=200)).isoformat(), (_today() - timedelta(days=10)).isoformat()
    _import(client, clinic, f"LINEユーザーID,来院日\n{TARO},{long_ago}\n{HANAKO},{long_ago}\n{HANAKO},{recent}\n")
    with tenant_scope(clinic.id):
        db.session.get(Friend, ids[TARO]).last_message_at = utcnow()  # wrote yesterday, never came back
        db.session.commit()
    assert _count(clinic, {"not_visited_for_days": 180}) == 1
    assert _count(clinic, {"visited_within_days": 30}) == 1
    live = client.post(
        f"/c/{clinic.slug}/deliveries/count",
        data={"audience": "segment", "not_visited_for_days": "180", "csrf_token": csrf_token(client)},
    ).get_data(as_text=True)
    assert "1" in live
    page = client.get(f"/c/{clinic.slug}/deliveries/new").get_data(as_text=True)
    assert "日以上前が最終来院" in page


def test_another_clinics_friend_and_visits_are_404(client):
    clinic, ids = _clinic()
    other = gen_clinic(name="別院")
    login(client, gen_user("owner", clinic=other))
    token = csrf_token(client)
    assert client.post(f"/c/{other.slug}/visits/friend/{ids[TARO]}", data={"csrf_token": token}).status_code == 404
    with tenant_scope(clinic.id):
        db.session.add(Visit(clinic_id=clinic.id, friend_id=ids[TARO], visited_on=date(2025, 1, 1)))
        db.session.commit()
        visit_id = db.session.scalar(sa.select(Visit.id))
    assert client.post(f"/c/{other.slug}/visits/{visit_id}/delete", data={"csrf_token": token}).status_code == 404
    assert _history(clinic, ids[TARO]) == [("2025-01-01", "desk")]


def test_a_booking_marked_visited_at_the_desk_joins_the_history_once(client, sandbox, live_server):
    from saas.booking import services as booking
    from tests.booking.support import booking_clinic, tomorrow_at
    from tests.forms.support import friend_of
    from tests.webhooks.support import run_jobs

    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "鈴木 次郎")
    sandbox.follow(channel, patient)
    run_jobs()
    friend_id = friend_of(clinic, patient).id
    at = tomorrow_at(clinic)  # today's 10:00 is in the past after 10:00 in Japan, and refused
    with tenant_scope(clinic.id):
        booking_id = booking.book(clinic, line_user_id=patient, patient_name="鈴木 次郎", starts_at=at).id
    login(client, gen_user("admin", clinic=clinic))
    for _ in range(2):
        client.post(
            f"/c/{clinic.slug}/booking/{booking_id}/status",
            data={"status": "visited", "csrf_token": csrf_token(client)},
        )
    assert _history(clinic, friend_id) == [(at.date().isoformat(), "booking")]
    page = client.get(f"/c/{clinic.slug}/friends/{friend_id}").get_data(as_text=True)
    assert "予約の来院" in page
