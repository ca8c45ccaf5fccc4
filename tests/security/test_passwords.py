"""Issue 10 item 9: password policy (length, zxcvbn), the change page, and reset by email with
single-use, expiring, hashed tokens — end to end through the mail adapter's outbox."""

from __future__ import annotations

import email
import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.auth.models import PasswordReset, User
from saas.common import utcnow
from saas.extensions import db
from saas.tenancy.scoping import platform_scope
from tests.conftest import csrf_token
from tests.factories import PASSWORD, gen_clinic, gen_user
from tests.helpers import login

STRONG = "kumo no ue de odoru kujira 42"


@pytest.fixture
def outbox(app, tmp_path, monkeypatch):
    monkeypatch.setitem(app.config, "MAIL_OUTBOX_DIR", str(tmp_path))
    monkeypatch.setitem(app.config, "MAIL_SERVER", "")
    return tmp_path


def _mails(outbox) -> list[email.message.Message]:
    return [email.message_from_bytes(p.read_bytes()) for p in sorted(outbox.glob("*.eml"))]


def _change(client, new: str, current: str = PASSWORD):
    data = {"current": current, "password": new, "confirm": new, "csrf_token": csrf_token(client)}
    return client.post("/auth/password", data=data)


@pytest.mark.parametrize(
    "weak",
    ["short1!", "password1234", "qwertyuiop12", "aaaaaaaaaaaaaaaa", "tsunagu-2026!", "{email}", "{name}2026!!"],
)
def test_weak_and_context_specific_passwords_are_refused(client, weak):
    user = gen_user("sender", clinic=gen_clinic())
    login(client, user)
    weak = weak.format(email=user.email, name=user.email.split("@")[0])
    response = _change(client, weak)
    assert response.status_code == 400
    assert re.search("文字以上にしてください|推測されやすい", response.get_data(as_text=True))
    assert login(client.application.test_client(), user).status_code == 302  # unchanged


def test_a_wrong_current_password_is_refused_and_audited(client):
    user = gen_user("sender", clinic=gen_clinic())
    login(client, user)
    assert _change(client, STRONG, current="not my password").status_code == 400
    with platform_scope("test: audit"):
        assert db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "password.change_failure")).all()


def _request_reset(app, address: str):
    client = app.test_client()
    return client.post("/auth/password/forgot", data={"email": address, "csrf_token": csrf_token(client)})


def test_password_reset_by_email_end_to_end(app, outbox):
    clinic = gen_clinic()
    user = gen_user("sender", clinic=clinic)
    signed_in = app.test_client()
    login(signed_in, user)
    assert _request_reset(app, user.email.upper()).status_code == 303
    (mail,) = _mails(outbox)
    assert mail["To"] == user.email
    link = re.search(r"https?://\S+/auth/password/reset/(\S+)", mail.get_payload(decode=True).decode()).group(0)
    token = link.rsplit("/", 1)[1]
    stored = db.session.scalars(sa.select(PasswordReset.token_hash)).one()
    assert token not in stored  # only a hash at rest

    browser = app.test_client()
    path = "/auth/password/reset/" + token
    assert browser.get(path).status_code == 200
    weak = browser.post(
        path, data={"password": "password123!", "confirm": "password123!", "csrf_token": csrf_token(browser)}
    )
    assert weak.status_code == 200 and "推測されやすい" in weak.get_data(as_text=True)
    done = browser.post(path, data={"password": STRONG, "confirm": STRONG, "csrf_token": csrf_token(browser)})
    assert done.status_code == 303
    assert signed_in.get(f"/c/{clinic.slug}/").status_code == 302  # every session ended
    db.session.expire_all()
    assert login(app.test_client(), db.session.get(User, user.id)).status_code == 401
    assert login(app.test_client(), db.session.get(User, user.id), password=STRONG).status_code == 302
    again = browser.post(
        path, data={"password": STRONG + "x", "confirm": STRONG + "x", "csrf_token": csrf_token(browser)}
    )
    assert again.status_code == 410  # single use


def test_an_expired_reset_link_is_refused(app, outbox):
    user = gen_user("sender", clinic=gen_clinic())
    _request_reset(app, user.email)
    token = re.search(r"/auth/password/reset/(\S+)", _mails(outbox)[0].get_payload(decode=True).decode()).group(1)
    db.session.execute(sa.update(PasswordReset).values(expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    assert app.test_client().get("/auth/password/reset/" + token).status_code == 410


def test_reset_answers_the_same_for_unknown_emails_and_sends_nothing(app, outbox):
    user = gen_user("sender", clinic=gen_clinic())
    known = _request_reset(app, user.email)
    unknown = _request_reset(app, "nobody@example.jp")
    assert known.status_code == unknown.status_code == 303
    assert known.location == unknown.location
    assert len(_mails(outbox)) == 1


def test_reset_requests_are_limited_per_email(app, outbox):
    user = gen_user("sender", clinic=gen_clinic())
    statuses = [_request_reset(app, user.email).status_code for _ in range(5)]
    assert statuses == [303, 303, 303, 429, 429]
    assert len(_mails(outbox)) == 3
