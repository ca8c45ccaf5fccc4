"""Clinic schedule: blocks, holidays, closures and 代診, urgent-notice requests, and the portal pages."""

from __future__ import annotations

import re
from datetime import date, datetime

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.schedule import services
from saas.schedule.models import Closure, ClosureKind, UrgentNoticeRequest, WeeklyBlock
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_clinic, gen_user
from tests.helpers import assert_rows_isolated, login

MONDAY = date(2026, 6, 1)  # an ordinary Monday
HOLIDAY = date(2026, 7, 20)  # 海の日, a Monday


@pytest.fixture
def clinic():
    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        for weekday in range(6):
            db.session.add(WeeklyBlock(weekday=weekday, label="午前", start="09:00", end="12:30"))
            db.session.add(WeeklyBlock(weekday=weekday, label="午後", start="14:00", end="18:00"))
        db.session.commit()
    return clinic


def test_hours_follow_the_weekly_blocks_and_public_holidays(clinic):
    with tenant_scope(clinic.id):
        assert [b.label for b in services.hours_on(clinic, MONDAY).blocks] == ["午前", "午後"]
        assert services.is_open_at(clinic, datetime(2026, 6, 1, 10, 0))
        assert not services.is_open_at(clinic, datetime(2026, 6, 1, 13, 0))
        holiday = services.hours_on(clinic, HOLIDAY)
        assert not holiday.is_open and holiday.holiday_name == "海の日"
        assert services.next_open_day(clinic, date(2026, 7, 18)).day == date(2026, 7, 21)  # Sun, then 海の日


def test_a_half_day_closure_closes_only_that_block_and_a_substitute_stays_open(clinic):
    with tenant_scope(clinic.id):
        db.session.add(Closure(starts_on=MONDAY, ends_on=MONDAY, blocks="午後", reason="院内研修"))
        db.session.add(Closure(kind=ClosureKind.SUBSTITUTE, starts_on=MONDAY, ends_on=MONDAY, substitute_doctor="佐藤"))
        db.session.commit()
        hours = services.hours_on(clinic, MONDAY)
    assert [b.label for b in hours.blocks] == ["午前"]
    assert "院内研修" in hours.summary() and "佐藤医師" in hours.summary()


def test_ticking_notify_records_one_pending_urgent_notice(clinic):
    with tenant_scope(clinic.id):
        closure = Closure(starts_on=MONDAY, ends_on=MONDAY, reason="停電", notify_friends=True)
        db.session.add(closure)
        db.session.flush()
        first = services.request_urgent_notice(clinic.id, closure.id)
        again = services.request_urgent_notice(clinic.id, closure.id)
        db.session.commit()
        assert first.id == again.id and first.status == "pending" and "停電" in first.text
        assert len(services.pending_urgent_notices(clinic.id)) == 1


def test_schedule_rows_are_isolated(as_platform):
    ids = [gen_clinic().id, gen_clinic().id]
    for model, make in (
        (WeeklyBlock, lambda c: WeeklyBlock(clinic_id=c, weekday=0, start="09:00", end="10:00")),
        (Closure, lambda c: Closure(clinic_id=c, starts_on=MONDAY, ends_on=MONDAY)),
    ):
        rows = [make(c) for c in ids]
        db.session.add_all(rows)
        db.session.commit()
        pks = [r.id for r in rows]
        assert_rows_isolated(model, db.session.get(model, pks[0]), db.session.get(model, pks[1]))


def test_one_closure_from_the_portal_changes_the_answer_and_queues_the_notice(client, clinic):
    user = gen_user("admin", clinic=clinic)
    login(client, user)
    page = client.get(f"/c/{clinic.slug}/schedule/closures/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    today = services.clinic_now(clinic).date().isoformat()
    form = {"csrf_token": token, "kind": "closed", "starts_on": today, "reason": "院長急病のため", "notify": "urgent"}
    preview = client.post(f"/c/{clinic.slug}/schedule/closures/new", data=form)
    assert preview.status_code == 200, "choosing to send first shows what will be sent"
    shown = preview.get_data(as_text=True)
    assert f"【{clinic.name}より休診のお知らせ】" in shown and "配信に同意していない友だちにも届きます" in shown
    assert 'data-testid="send-recipients"' in shown
    with tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(UrgentNoticeRequest)).all() == [], "a preview saves and sends nothing"
    response = client.post(f"/c/{clinic.slug}/schedule/closures/new", data={**form, "confirm_send": "1"})
    assert response.status_code == 302
    schedule_page = client.get(f"/c/{clinic.slug}/schedule/").get_data(as_text=True)
    assert "院長急病のため" in schedule_page and "配信待ち" in schedule_page
    test = client.post(f"/c/{clinic.slug}/autoreply/test", data={"csrf_token": token, "text": "今日の診療時間は？"})
    assert test.status_code == 200
    with tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(UrgentNoticeRequest.status)).all() == ["pending"]
        assert db.session.scalars(sa.select(UrgentNoticeRequest.text)).one().startswith(f"【{clinic.name}")


def test_a_closure_saved_without_choosing_to_send_sends_nothing(client, clinic):
    login(client, gen_user("admin", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/schedule/closures/new").get_data(as_text=True)
    assert 'value="none" checked' in page, "not sending is the default"
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    today = services.clinic_now(clinic).date().isoformat()
    response = client.post(
        f"/c/{clinic.slug}/schedule/closures/new",
        data={"csrf_token": token, "kind": "closed", "starts_on": today, "notify": "none"},
    )
    assert response.status_code == 302
    with tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(UrgentNoticeRequest)).all() == []
        assert len(db.session.scalars(sa.select(Closure)).all()) == 1


def test_portal_pages_render_for_staff_and_editing_needs_permission(client, clinic):
    viewer = gen_user("viewer", clinic=clinic)
    login(client, viewer)
    for path in ("schedule/", "autoreply/", "library/"):
        page = client.get(f"/c/{clinic.slug}/{path}")
        assert page.status_code == 200, path
        assert "自動応答" in page.get_data(as_text=True) and "診療スケジュール" in page.get_data(as_text=True)
    assert client.get(f"/c/{clinic.slug}/autoreply/rules/new").status_code == 403
    assert client.get(f"/c/{clinic.slug}/schedule/closures/new").status_code == 403
