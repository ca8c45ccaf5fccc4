"""Staff management: the members page, invitations, role changes and removals, all audited."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.auth.models import Membership, User
from saas.common import utcnow
from saas.extensions import db
from saas.members.models import Invitation
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.conftest import csrf_token
from tests.factories import PASSWORD, gen_clinic, gen_organization, gen_user
from tests.helpers import assert_rows_isolated, login

NEW_PASSWORD = "a brand new passphrase"


def _audit(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)))


def _invite(client, clinic, email: str, role: str = "responder") -> str:
    response = client.post(
        f"/c/{clinic.slug}/members/invite", data={"email": email, "role": role, "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return re.search(r'value="https?://[^"]+/invitations/([^"]+)"', response.get_data(as_text=True)).group(1)


def _accept(client, token: str, **data):
    form = {"name": "新人 花子", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD, **data}
    return client.post(f"/invitations/{token}", data={**form, "csrf_token": csrf_token(client)})


def test_members_page_lists_everyone_who_reaches_the_clinic(client):
    organization = gen_organization()
    clinic, sibling = gen_clinic(organization), gen_clinic(organization)
    admin = gen_user("admin", clinic=clinic)
    org_analyst = gen_user("analyst", organization=organization)
    sibling_viewer = gen_user("viewer", clinic=sibling)
    login(client, admin)
    page = client.get(f"/c/{clinic.slug}/members/").get_data(as_text=True)
    assert admin.email in page and org_analyst.email in page
    assert sibling_viewer.email not in page


def test_viewer_cannot_open_members_page(client):
    clinic = gen_clinic()
    login(client, gen_user("viewer", clinic=clinic))
    assert client.get(f"/c/{clinic.slug}/members/").status_code == 403
    assert (
        client.post(
            f"/c/{clinic.slug}/members/invite",
            data={"email": "x@example.jp", "role": "viewer", "csrf_token": csrf_token(client)},
        ).status_code
        == 403
    )


def _accept_signed_in(client, token: str):
    return client.post(f"/invitations/{token}", data={"action": "accept", "csrf_token": csrf_token(client)})


def test_invitation_is_accepted_once_and_creates_the_membership(client, app):
    clinic = gen_clinic()
    admin = gen_user("admin", clinic=clinic)
    login(client, admin)
    token = _invite(client, clinic, "New.Staff@Example.jp")
    with tenant_scope(clinic.id):
        invitation = db.session.scalars(sa.select(Invitation)).one()
        assert invitation.token_hash != token and token not in invitation.token_hash
        assert timedelta(hours=71) < invitation.expires_at - utcnow() <= timedelta(hours=72)

    newcomer = app.test_client()
    assert "新人" not in newcomer.get(f"/invitations/{token}").get_data(as_text=True)  # form, not yet accepted
    response = _accept(newcomer, token)
    assert response.status_code == 303 and f"/invitations/{token}" in response.headers["Location"]
    user = db.session.scalars(sa.select(User).where(User.email == "new.staff@example.jp")).one()
    assert user.memberships == []  # the membership comes once the newcomer has signed in
    login(newcomer, user, password=NEW_PASSWORD)
    assert _accept_signed_in(newcomer, token).status_code == 303  # responder: enrolment is next
    db.session.expire_all()
    assert [(m.role, m.clinic_id) for m in db.session.get(User, user.id).memberships] == [("responder", clinic.id)]
    assert newcomer.get(f"/c/{clinic.slug}/").location.endswith("/auth/two-factor/enrol")
    assert _audit("membership.create")[0].clinic_id == clinic.id
    assert _audit("invitation.create")[0].actor_user_id == admin.id

    again = _accept(app.test_client(), token, password="another passphrase", confirm="another passphrase")
    assert again.status_code == 410 and "既に使用されています" in again.get_data(as_text=True)


def test_expired_invitation_is_refused_with_a_clear_message(client, app):
    clinic = gen_clinic()
    login(client, gen_user("admin", clinic=clinic))
    token = _invite(client, clinic, "late@example.jp")
    with tenant_scope(clinic.id):
        db.session.scalars(sa.select(Invitation)).one().expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
    response = _accept(app.test_client(), token)
    assert response.status_code == 410 and "有効期限（72時間）が切れています" in response.get_data(as_text=True)
    assert db.session.scalars(sa.select(User).where(User.email == "late@example.jp")).first() is None


def test_unknown_and_revoked_invitation_links_are_refused(client, app):
    clinic = gen_clinic()
    login(client, gen_user("admin", clinic=clinic))
    assert app.test_client().get("/invitations/not-a-token").status_code == 410
    token = _invite(client, clinic, "maybe@example.jp")
    with tenant_scope(clinic.id):
        invitation_id = db.session.scalars(sa.select(Invitation.id)).one()
    client.post(f"/c/{clinic.slug}/members/invitations/{invitation_id}/revoke", data={"csrf_token": csrf_token(client)})
    response = app.test_client().get(f"/invitations/{token}")
    assert response.status_code == 410 and "取り消されました" in response.get_data(as_text=True)
    assert _audit("invitation.revoke")


def test_existing_user_accepts_by_signing_in_normally(client, app):
    clinic, other = gen_clinic(), gen_clinic()
    login(client, gen_user("admin", clinic=clinic))
    existing = gen_user("viewer", clinic=other)
    token = _invite(client, clinic, existing.email, role="analyst")
    invitee = app.test_client()
    page = invitee.get(f"/invitations/{token}").get_data(as_text=True)
    assert "ログインして承認" in page
    login(invitee, existing)
    assert _accept_signed_in(invitee, token).status_code == 303
    db.session.expire_all()
    assert sorted((m.role, m.clinic_id) for m in db.session.get(User, existing.id).memberships) == sorted(
        [("viewer", other.id), ("analyst", clinic.id)]
    )


def test_someone_else_signed_in_cannot_accept_the_invitation(client, app):
    clinic = gen_clinic()
    login(client, gen_user("admin", clinic=clinic))
    token = _invite(client, clinic, "invitee@example.jp")
    intruder = app.test_client()
    login(intruder, gen_user("viewer", clinic=gen_clinic()))
    assert _accept_signed_in(intruder, token).status_code == 403
    assert _audit("membership.create") == []


def test_role_change_is_audited_and_takes_effect(client):
    clinic = gen_clinic()
    admin = gen_user("admin", clinic=clinic)
    staff = gen_user("viewer", clinic=clinic)
    membership_id = staff.memberships[0].id
    login(client, admin)
    response = client.post(
        f"/c/{clinic.slug}/members/{membership_id}/role", data={"role": "sender", "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 303
    db.session.expire_all()
    assert db.session.get(Membership, membership_id).role == "sender"
    (event,) = _audit("membership.update")
    assert event.clinic_id == clinic.id and event.actor_user_id == admin.id
    assert event.details == {"user_email": staff.email, "from": "viewer", "to": "sender"}


def test_admin_cannot_grant_owner_or_change_themselves(client):
    clinic = gen_clinic()
    admin = gen_user("admin", clinic=clinic)
    staff = gen_user("viewer", clinic=clinic)
    login(client, admin)
    token = csrf_token(client)
    client.post(f"/c/{clinic.slug}/members/{staff.memberships[0].id}/role", data={"role": "owner", "csrf_token": token})
    client.post(f"/c/{clinic.slug}/members/{admin.memberships[0].id}/remove", data={"csrf_token": token})
    db.session.expire_all()
    assert db.session.get(Membership, staff.memberships[0].id).role == "viewer"
    assert db.session.get(Membership, admin.memberships[0].id) is not None
    assert not _audit("membership.update") and not _audit("membership.delete")


def test_removal_is_audited_and_revokes_access(client, app):
    clinic = gen_clinic()
    admin = gen_user("admin", clinic=clinic)
    staff = gen_user("viewer", clinic=clinic)
    login(client, admin)
    client.post(f"/c/{clinic.slug}/members/{staff.memberships[0].id}/remove", data={"csrf_token": csrf_token(client)})
    (event,) = _audit("membership.delete")
    assert event.details["user_email"] == staff.email
    removed = app.test_client()
    login(removed, staff)
    assert removed.get(f"/c/{clinic.slug}/").status_code == 404


def test_memberships_granted_above_the_clinic_cannot_be_changed_from_its_page(client):
    organization = gen_organization()
    clinic = gen_clinic(organization)
    login(client, gen_user("owner", clinic=clinic))
    org_admin = gen_user("admin", organization=organization)
    response = client.post(
        f"/c/{clinic.slug}/members/{org_admin.memberships[0].id}/role",
        data={"role": "viewer", "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 404


def test_invitations_are_isolated_per_clinic():
    clinic_a, clinic_b = gen_clinic(), gen_clinic()
    with platform_scope("test setup"):
        rows = [
            Invitation(clinic_id=c.id, email="x@example.jp", role="viewer", token_hash=f"h{c.id}", expires_at=utcnow())
            for c in (clinic_a, clinic_b)
        ]
        db.session.add_all(rows)
        db.session.commit()
        assert [(r.id, r.clinic_id) for r in rows]  # loaded while every clinic is visible
    assert_rows_isolated(Invitation, *rows)


def _page_without(client, token: str, *variable: str) -> str:
    page = client.get(f"/invitations/{token}").get_data(as_text=True)
    page = re.sub(r'name="csrf_token" type="hidden" value="[^"]+"', "", page).replace(token, "TOKEN")
    for text in variable:
        page = page.replace(text, "X")
    return page


def test_an_admin_cannot_use_an_invitation_to_guess_an_existing_users_password(client, app):
    clinic = gen_clinic()
    login(client, gen_user("admin", clinic=clinic))
    victim = gen_user("owner", clinic=gen_clinic())
    hash_before = victim.password_hash
    token = _invite(client, clinic, victim.email, role="viewer")
    for guess in ["kumo no ue de odoru kujira 42", PASSWORD, "tsuki ga kirei desu ne 1868"]:
        response = _accept(app.test_client(), token, password=guess, confirm=guess, name="x")
        assert response.status_code == 303  # "sign in to accept": the guess is never checked
    db.session.expire_all()
    assert db.session.get(User, victim.id).password_hash == hash_before
    assert len(db.session.get(User, victim.id).memberships) == 1  # no membership without a real sign-in
    assert _audit("membership.create") == []


def test_the_invitation_page_and_answers_are_the_same_whether_or_not_an_account_exists(client, app):
    clinic = gen_clinic()
    login(client, gen_user("admin", clinic=clinic))
    existing = gen_user("viewer", clinic=gen_clinic())
    known = _invite(client, clinic, existing.email)
    unknown = _invite(client, clinic, "nobody.yet@example.jp")
    viewer = app.test_client()
    assert _page_without(viewer, known, existing.email) == _page_without(viewer, unknown, "nobody.yet@example.jp")
    strong = "kumo no ue de odoru kujira 42"
    answers = [_accept(app.test_client(), t, password=strong, confirm=strong) for t in (known, unknown)]
    assert [a.status_code for a in answers] == [303, 303]
    assert [a.location.replace(t, "T") for a, t in zip(answers, (known, unknown), strict=True)] == [
        answers[1].location.replace(unknown, "T")
    ] * 2
    weak = [_accept(app.test_client(), t, password="password1234", confirm="password1234") for t in (known, unknown)]
    assert [w.status_code for w in weak] == [400, 400]


def test_invitations_preselect_the_least_powerful_role(client):
    clinic = gen_clinic()
    login(client, gen_user("owner", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/members/").get_data(as_text=True)
    invite_form = page[page.index('id="role"') :]
    assert re.search(r'<option selected value="viewer">|<option value="viewer" selected>', invite_form)
    assert invite_form.index('value="viewer"') < invite_form.index('value="owner"')
