"""The wizard's hours and staff steps are done inside the wizard: the weekly timetable saved through
saas.schedule, a staff invitation through saas.members (its link shown once), both checked off."""

from __future__ import annotations

import re

import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.extensions import db
from saas.members.models import Invitation
from saas.schedule.models import WeeklyBlock
from saas.tenancy.scoping import tenant_scope
from tests.conftest import csrf_token
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user
from tests.helpers import login


def _clinic_and_admin():
    agency = gen_agency()
    clinic = gen_clinic(gen_organization(agency))
    return clinic, gen_user("admin", agency=agency)


def _hours(client, **extra) -> dict:
    form = {f"d{day}_0_start": "09:00" for day in range(5)} | {f"d{day}_0_end": "12:30" for day in range(5)}
    form |= {f"d{day}_0_label": "午前" for day in range(5)}
    return form | {"d5_0_start": "09:00", "d5_0_end": "13:00", "closed_on_public_holidays": "1",
                   "csrf_token": csrf_token(client)} | extra  # fmt: skip


def test_the_hours_are_set_in_the_wizard_and_checked_off(client):
    clinic, admin = _clinic_and_admin()
    login(client, admin)
    page = client.get(f"/c/{clinic.slug}/onboarding").get_data(as_text=True)
    assert f'action="/c/{clinic.slug}/onboarding/schedule"' in page and 'name="d0_0_start"' in page
    assert 'data-step="schedule" data-done="no"' in page

    saved = client.post(f"/c/{clinic.slug}/onboarding/schedule", data=_hours(client))
    assert saved.status_code == 302 and saved.location.endswith("/onboarding#wizard-schedule")
    with tenant_scope(clinic.id):
        blocks = db.session.scalars(sa.select(WeeklyBlock).order_by(WeeklyBlock.weekday)).all()
        assert [(b.weekday, b.start, b.end) for b in blocks][-2:] == [(4, "09:00", "12:30"), (5, "09:00", "13:00")]
    page = client.get(f"/c/{clinic.slug}/onboarding").get_data(as_text=True)
    assert 'data-step="schedule" data-done="yes"' in page and 'value="12:30"' in page
    assert db.session.scalar(sa.select(AuditEvent.id).where(AuditEvent.action == "schedule.weekly"))


def test_bad_hours_are_refused_in_the_wizard_and_nothing_is_saved(client):
    clinic, admin = _clinic_and_admin()
    login(client, admin)
    refused = client.post(f"/c/{clinic.slug}/onboarding/schedule", data=_hours(client, d0_0_end="08:00"))
    assert refused.status_code == 422 and "月曜 午前 の時刻が正しくありません" in refused.get_data(as_text=True)
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(WeeklyBlock.id))) == 0


def test_staff_are_invited_from_the_wizard_with_a_link_shown_once(client):
    clinic, admin = _clinic_and_admin()
    login(client, admin)
    answer = client.post(
        f"/c/{clinic.slug}/onboarding/invite",
        data={"email": "Uketsuke@Mirai.example", "role": "responder", "csrf_token": csrf_token(client)},
    )
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    link = re.search(r'value="(http[^"]+/invitations/[^"]+)" aria-label="招待リンク"', page).group(1)
    assert 'data-copy="#invitation-link"' in page
    with tenant_scope(clinic.id):
        invitation = db.session.scalars(sa.select(Invitation)).one()
        assert (invitation.email, invitation.role) == ("uketsuke@mirai.example", "responder")
    again = client.get(f"/c/{clinic.slug}/onboarding").get_data(as_text=True)
    assert link not in again and 'data-step="staff" data-done="yes"' in again and "uketsuke@mirai.example" in again


def test_the_wizard_refuses_a_bad_address_a_role_above_ones_own_and_staff_without_the_right(client):
    clinic, admin = _clinic_and_admin()
    login(client, admin)
    bad = client.post(f"/c/{clinic.slug}/onboarding/invite",
                      data={"email": "not-an-address", "role": "viewer", "csrf_token": csrf_token(client)})  # fmt: skip
    assert bad.status_code == 422 and "メールアドレスの形式が正しくありません" in bad.get_data(as_text=True)
    sender = client.application.test_client()
    login(sender, gen_user("admin", clinic=clinic))
    above = sender.post(f"/c/{clinic.slug}/onboarding/invite",
                        data={"email": "x@mirai.example", "role": "owner", "csrf_token": csrf_token(sender)})  # fmt: skip
    assert above.status_code == 403
    viewer = client.application.test_client()
    login(viewer, gen_user("viewer", clinic=clinic))
    for path, data in (
        ("invite", {"email": "y@mirai.example", "role": "viewer"}),
        ("schedule", {"d0_0_start": "09:00", "d0_0_end": "10:00"}),
    ):
        assert viewer.post(
            f"/c/{clinic.slug}/onboarding/{path}", data={**data, "csrf_token": csrf_token(viewer)}
        ).status_code in (403, 404)
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(Invitation.id))) == 0
        assert db.session.scalar(sa.select(sa.func.count(WeeklyBlock.id))) == 0
