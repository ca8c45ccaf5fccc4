"""Staff login: passwords, the throttle, two-factor, session expiry, CSRF."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from saas.auth.models import StaffSession, User
from saas.common import utcnow
from saas.extensions import db
from tests.conftest import csrf_token
from tests.factories import gen_clinic, gen_user, totp_code
from tests.helpers import login


def test_sender_signs_in_with_password_and_reaches_the_portal(client):
    clinic = gen_clinic()
    user = gen_user("sender", clinic=clinic)
    response = login(client, user)
    assert response.status_code == 302
    page = client.get("/", follow_redirects=True).get_data(as_text=True)
    assert clinic.name in page


def test_wrong_password_is_refused_without_saying_which_part_was_wrong(client):
    user = gen_user("sender", clinic=gen_clinic())
    response = login(client, user, password="wrong")
    assert response.status_code == 401
    assert "メールアドレスまたはパスワードが正しくありません" in response.get_data(as_text=True)
    assert client.get("/").status_code == 302


def test_sixth_wrong_password_in_a_minute_is_refused_with_a_clear_message(client):
    user = gen_user("sender", clinic=gen_clinic())
    for _ in range(5):
        assert login(client, user, password="wrong").status_code == 401
    response = login(client, user)  # the right password from the same address is refused now
    assert response.status_code == 429
    assert "以降にもう一度お試しください" in response.get_data(as_text=True)


def test_responder_without_totp_cannot_reach_the_portal_until_enrolled(client):
    clinic = gen_clinic()
    user = gen_user("responder", clinic=clinic, two_factor=False)
    login(client, user)
    response = client.get(f"/c/{clinic.slug}/")
    assert response.status_code == 302 and "/auth/two-factor/enrol" in response.location
    enrol_page = client.get("/auth/two-factor/enrol").get_data(as_text=True)
    assert "data:image/svg+xml;base64," in enrol_page
    db.session.expire_all()
    enrolling = db.session.get(User, user.id)
    client.post("/auth/two-factor/enrol", data={"code": totp_code(enrolling), "csrf_token": csrf_token(client)})
    assert client.get(f"/c/{clinic.slug}/").status_code == 200
    db.session.expire_all()
    assert db.session.get(User, user.id).totp_enabled_at is not None


def test_enrolled_admin_must_enter_a_valid_code(client):
    clinic = gen_clinic()
    user = gen_user("admin", clinic=clinic)
    login(client, user, complete_two_factor=False)
    assert client.get(f"/c/{clinic.slug}/").status_code == 302
    bad = client.post("/auth/two-factor", data={"code": "000000", "csrf_token": csrf_token(client)})
    assert "確認コードが正しくありません" in bad.get_data(as_text=True)
    client.post("/auth/two-factor", data={"code": totp_code(user), "csrf_token": csrf_token(client)})
    assert client.get(f"/c/{clinic.slug}/").status_code == 200


def test_a_used_totp_code_cannot_be_replayed(client, app):
    clinic = gen_clinic()
    user = gen_user("admin", clinic=clinic)
    code = totp_code(user)
    login(client, user, complete_two_factor=False)
    client.post("/auth/two-factor", data={"code": code, "csrf_token": csrf_token(client)})
    other = app.test_client()
    login(other, user, complete_two_factor=False)
    replay = other.post("/auth/two-factor", data={"code": code, "csrf_token": csrf_token(other)})
    assert "確認コードが正しくありません" in replay.get_data(as_text=True)


def test_idle_session_expires(client, app):
    clinic = gen_clinic()
    user = gen_user("sender", clinic=clinic)
    login(client, user)
    assert client.get(f"/c/{clinic.slug}/").status_code == 200
    idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"], seconds=5)
    db.session.execute(sa.update(StaffSession).values(last_seen_at=utcnow() - idle))
    db.session.commit()
    response = client.get(f"/c/{clinic.slug}/")
    assert response.status_code == 302 and "/auth/login" in response.location


def test_login_form_without_csrf_token_is_refused(client):
    user = gen_user("sender", clinic=gen_clinic())
    response = client.post("/auth/login", data={"email": user.email, "password": "x"})
    assert response.status_code == 400


def test_logout_ends_the_session(client):
    clinic = gen_clinic()
    login(client, gen_user("sender", clinic=clinic))
    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    assert client.get(f"/c/{clinic.slug}/").status_code == 302


def test_sign_in_forms_carry_no_unset_attributes(client):
    """An unset attribute printed as "None" (inputmode="None") hides the keyboard on phones."""
    for path in ("/auth/login", "/auth/password/forgot"):
        page = client.get(path).get_data(as_text=True)
        assert '="None"' not in page, path
        assert 'type="email"' in page or 'name="email"' in page
