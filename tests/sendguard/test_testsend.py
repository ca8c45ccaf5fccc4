"""「テスト送信」: a staff member links their own LINE once through LINE Login (the sandbox's, where one
signs in as a sandbox patient) and receives the exact messages of a send by push, audited."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
import requests
import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.booking import services as booking
from saas.extensions import db
from saas.sendguard.models import StaffLineLink
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.conftest import csrf_token
from tests.delivery.support import add_friends, connected_clinic, new_user_id
from tests.factories import gen_user
from tests.helpers import login

CHANNEL, LOGIN_CHANNEL = "1740000001", "1640000001"


@pytest.fixture
def clinic(sandbox):
    clinic = connected_clinic(sandbox, CHANNEL)
    sandbox.add_login_channel(LOGIN_CHANNEL, "l" * 32, bot_channel_id=CHANNEL)
    with tenant_scope(clinic.id):
        settings = booking.get_settings(clinic.id)
        settings.login_channel_id, settings.login_channel_secret = LOGIN_CHANNEL, "l" * 32
        db.session.commit()
    return clinic


@pytest.fixture
def staff(client, clinic):
    user = gen_user("sender", clinic=clinic)
    login(client, user)
    client.user = user
    return client


def link_line(client, clinic, sandbox, line_user_id: str):
    """Press 「LINEでログインして連携する」 and approve LINE Login in the sandbox as ``line_user_id``."""
    sandbox.add_patients(CHANNEL, [line_user_id])
    started = client.post(f"/c/{clinic.slug}/me/line/link", data={"csrf_token": csrf_token(client)})
    assert started.status_code == 302 and "/oauth2/v2.1/authorize" in started.headers["Location"]
    back = requests.get(
        started.headers["Location"] + f"&sandbox_user={line_user_id}", allow_redirects=False, timeout=10
    )
    assert back.status_code == 302
    callback = urlsplit(back.headers["Location"])
    return client.get(f"{callback.path}?{callback.query}")


def press_test_send(client, clinic, **fields):
    data = {"csrf_token": csrf_token(client), **fields}
    return client.post(f"/c/{clinic.slug}/test-send", data=data, headers={"HX-Request": "true"})


def test_staff_link_their_line_and_a_test_send_reaches_it(staff, clinic, sandbox):
    assert 'data-testid="link-line"' in staff.get(f"/c/{clinic.slug}/me/line").get_data(as_text=True)
    not_yet = press_test_send(staff, clinic, text="テストです").get_data(as_text=True)
    assert "自分のLINEを連携してください" in not_yet
    mine = new_user_id()
    linked = link_line(staff, clinic, sandbox, mine)
    assert linked.status_code == 302
    assert 'data-testid="linked-line"' in staff.get(f"/c/{clinic.slug}/me/line").get_data(as_text=True)
    answer = press_test_send(staff, clinic, text="{{clinic.name}}より：明日は休診です").get_data(as_text=True)
    assert "テスト送信しました" in answer
    (received,) = sandbox.inbox(CHANNEL, mine)
    assert received["message"]["text"] == f"{clinic.name}より：明日は休診です"
    with platform_scope("test"):
        (event,) = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "delivery.test_send")).all()
        linked_event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "staff.line.link")).one()
    assert event.actor_email == staff.user.email and event.details["messages"] == 1
    assert linked_event.target_id == str(staff.user.id)


def test_a_test_send_of_a_draft_sends_every_message_and_nobody_else_gets_it(staff, clinic, sandbox):
    friends = add_friends(sandbox, clinic, 2)
    mine = new_user_id()
    link_line(staff, clinic, sandbox, mine)
    composed = staff.post(
        f"/c/{clinic.slug}/messages/send",
        data={
            "csrf_token": csrf_token(staff),
            "m0_type": "text",
            "m0_text": "一通目",
            "m1_type": "text",
            "m1_text": "二通目",
        },
    )
    draft_id = composed.headers["Location"].split("draft=")[1]
    assert "テスト送信しました" in press_test_send(staff, clinic, draft_id=draft_id).get_data(as_text=True)
    assert [m["message"]["text"] for m in sandbox.inbox(CHANNEL, mine)] == ["一通目", "二通目"]
    assert not sandbox.inbox(CHANNEL, friends[0])


def test_links_are_per_staff_member_and_other_clinics_drafts_are_404(app, staff, clinic, sandbox):
    link_line(staff, clinic, sandbox, new_user_id())
    colleague = app.test_client()
    login(colleague, gen_user("sender", clinic=clinic))
    assert "自分のLINEを連携してください" in press_test_send(colleague, clinic, text="テスト").get_data(as_text=True)
    other = connected_clinic(sandbox, "1740000002")
    with tenant_scope(other.id):
        from saas.delivery.services import create_draft

        draft_id = create_draft([{"type": "text", "text": "別院の下書き"}]).id
    assert press_test_send(staff, clinic, draft_id=str(draft_id)).status_code == 404
    staff.post(f"/c/{clinic.slug}/me/line/unlink", data={"csrf_token": csrf_token(staff)})
    with tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(StaffLineLink)).all() == []


def test_a_forged_login_callback_links_nothing(staff, clinic):
    staff.post(f"/c/{clinic.slug}/me/line/link", data={"csrf_token": csrf_token(staff)})
    forged = staff.get(f"/c/{clinic.slug}/me/line/callback?code=abc&state=not-the-state")
    assert forged.status_code == 302
    with tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(StaffLineLink)).all() == []
