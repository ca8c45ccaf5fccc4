"""The audit log: login events, the admin page with filters, isolation, append-only, retention."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.audit.models import AuditEvent, AuditLogImmutable
from saas.audit.services import purge_expired, record
from saas.common import utcnow
from saas.extensions import db
from tests.factories import gen_clinic, gen_user
from tests.helpers import login


def _events(action: str | None = None) -> list[AuditEvent]:
    db.session.expire_all()
    statement = sa.select(AuditEvent).order_by(AuditEvent.id)
    if action:
        statement = statement.where(AuditEvent.action == action)
    return list(db.session.scalars(statement))


def test_login_success_failure_two_factor_and_logout_are_recorded(client):
    clinic = gen_clinic()
    user = gen_user("admin", clinic=clinic)
    client.post("/auth/login", data={"email": user.email, "password": "wrong"})  # CSRF refused: not a login attempt
    login(client, user, password="wrong password")
    login(client, user)
    from tests.conftest import csrf_token

    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})

    failure, success = _events("login.failure"), _events("login.success")
    assert len(failure) == 1 and failure[0].actor_email == user.email and failure[0].actor_user_id == user.id
    assert failure[0].details == {"reason": "bad_credentials"} and failure[0].ip == "127.0.0.1"
    assert len(success) == 1 and success[0].actor_user_id == user.id and success[0].clinic_id is None
    assert len(_events("two_factor.success")) == 1
    assert len(_events("logout")) == 1


def test_login_failure_for_unknown_email_is_recorded_without_user(client):
    from tests.conftest import csrf_token

    client.post("/auth/login", data={"email": "nobody@example.jp", "password": "x", "csrf_token": csrf_token(client)})
    (event,) = _events("login.failure")
    assert event.actor_user_id is None and event.actor_email == "nobody@example.jp"


def _seed(clinic, actions_by_email: list[tuple[str, str]], when=None):
    for action, email in actions_by_email:
        event = record(action, clinic_id=clinic.id, actor_email=email, target_type="friend", target_id=1)
        if when is not None:
            event.created_at = when
    db.session.commit()


def test_admin_filters_audit_page_by_action_actor_and_date(client):
    clinic = gen_clinic()
    admin = gen_user("admin", clinic=clinic)
    _seed(clinic, [("conversation.view", "a@example.jp"), ("message.send", "b@example.jp")])
    _seed(clinic, [("settings.update", "c@example.jp")], when=utcnow() - timedelta(days=40))
    login(client, admin)
    base = f"/c/{clinic.slug}/audit/"

    page = client.get(base).get_data(as_text=True)
    assert "conversation.view" in page and "message.send" in page and "settings.update" in page

    by_action = client.get(base + "?action=message.send").get_data(as_text=True)
    assert "b@example.jp" in by_action and "a@example.jp" not in by_action

    by_actor = client.get(base + "?actor=a@example").get_data(as_text=True)
    assert "a@example.jp" in by_actor and "b@example.jp" not in by_actor

    old_day = (utcnow() - timedelta(days=40) + timedelta(hours=9)).date().isoformat()
    by_date = client.get(base + f"?from={old_day}&to={old_day}").get_data(as_text=True)
    assert "c@example.jp" in by_date and "a@example.jp" not in by_date


def test_audit_page_paginates(client):
    clinic = gen_clinic()
    admin = gen_user("admin", clinic=clinic)
    _seed(clinic, [("message.send", f"s{n}@example.jp") for n in range(60)])
    login(client, admin)
    first = client.get(f"/c/{clinic.slug}/audit/").get_data(as_text=True)
    next_url = first.split('data-testid="audit-next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(next_url).get_data(as_text=True)
    assert "s59@example.jp" in first and "s0@example.jp" not in first
    assert "s0@example.jp" in second and "s59@example.jp" not in second and 'data-testid="audit-next"' not in second


def test_admin_of_clinic_a_sees_no_audit_events_of_clinic_b(client):
    clinic_a, clinic_b = gen_clinic(), gen_clinic()
    admin_a = gen_user("admin", clinic=clinic_a)
    _seed(clinic_a, [("message.send", "mine@example.jp")])
    _seed(clinic_b, [("message.send", "theirs@example.jp")])
    login(client, admin_a)
    page = client.get(f"/c/{clinic_a.slug}/audit/").get_data(as_text=True)
    assert "mine@example.jp" in page and "theirs@example.jp" not in page
    csv_text = client.get(f"/c/{clinic_a.slug}/audit/export.csv").get_data(as_text=True)
    assert "mine@example.jp" in csv_text and "theirs@example.jp" not in csv_text
    assert client.get(f"/c/{clinic_b.slug}/audit/").status_code == 404


def test_csv_export_downloads_and_is_itself_audited(client):
    clinic = gen_clinic()
    admin = gen_user("admin", clinic=clinic)
    _seed(clinic, [("friends.export", "x@example.jp")])
    login(client, admin)
    response = client.get(f"/c/{clinic.slug}/audit/export.csv?action=friends")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"  # the charset once
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff日時(JST)") and "friends.export" in text
    (export,) = _events("audit.export")
    assert export.clinic_id == clinic.id and export.actor_user_id == admin.id and export.details["rows"] == 1


def test_viewer_cannot_open_audit_page(client):
    clinic = gen_clinic()
    login(client, gen_user("viewer", clinic=clinic))
    assert client.get(f"/c/{clinic.slug}/audit/").status_code == 403


def test_audit_events_cannot_be_updated_or_deleted():
    event = record("message.send", clinic_id=1, actor_email="a@example.jp")
    db.session.commit()
    event.action = "nothing.happened"
    with pytest.raises(AuditLogImmutable):
        db.session.commit()
    db.session.rollback()
    db.session.delete(db.session.get(AuditEvent, event.id))
    with pytest.raises(AuditLogImmutable):
        db.session.commit()
    db.session.rollback()
    with pytest.raises(AuditLogImmutable):
        db.session.execute(sa.update(AuditEvent).values(action="x"))
    with pytest.raises(AuditLogImmutable):
        db.session.execute(sa.delete(AuditEvent))
    db.session.rollback()
    assert [e.action for e in _events()] == ["message.send"]


def test_purge_deletes_only_events_older_than_retention(app, runner):
    now = utcnow()
    old = record("message.send", clinic_id=1, actor_email="old@example.jp")
    old.created_at = now - timedelta(days=31)
    recent = record("message.send", clinic_id=1, actor_email="recent@example.jp")
    recent.created_at = now - timedelta(days=29)
    db.session.commit()
    app.config["AUDIT_RETENTION_DAYS"] = 30
    try:
        result = runner.invoke(args=["audit", "purge"])
    finally:
        app.config.pop("AUDIT_RETENTION_DAYS")
    assert result.exit_code == 0, result.output
    remaining = {e.actor_email for e in _events("message.send")}
    assert remaining == {"recent@example.jp"}
    (purge,) = _events("audit.purge")
    assert purge.details["deleted"] == 1


def test_purge_job_keeps_five_years_by_default():
    from rq import SimpleWorker

    from saas.audit.jobs import purge_audit_events
    from saas.queues import get_queue, get_redis

    now = utcnow()
    for days, email in ((1826, "expired@example.jp"), (1824, "kept@example.jp")):
        record("login.success", actor_email=email).created_at = now - timedelta(days=days)
    db.session.commit()
    get_queue("default").enqueue(purge_audit_events)
    SimpleWorker([get_queue("default")], connection=get_redis()).work(burst=True)
    assert {e.actor_email for e in _events("login.success")} == {"kept@example.jp"}
    assert purge_expired() == 0
