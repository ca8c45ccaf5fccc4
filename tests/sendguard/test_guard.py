"""The mis-send guard through the sandbox and real RQ burst workers: big sends, fresh segments and
block-level 医療広告 findings wait for a second staff member; urgent notices confirm their count."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.common import utcnow
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.friends.models import Friend, FriendTag, Tag
from saas.sendguard.models import SendApproval
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.conftest import csrf_token
from tests.delivery.support import add_friends, connected_clinic, drain
from tests.factories import gen_user
from tests.helpers import login

CHANNEL = "1730000001"


@pytest.fixture
def clinic(sandbox):
    return connected_clinic(sandbox, CHANNEL)


def signed_in(app, user):
    client = app.test_client()
    login(client, user)
    client.user = user
    return client


def send(client, clinic, **fields):
    data = {"csrf_token": csrf_token(client), "audience": "all", **fields}
    return client.post(f"/c/{clinic.slug}/deliveries", data=data)


def only(model, clinic):
    """The clinic's one row of ``model``, detached (so it can be read after the requests that follow)."""
    db.session.expire_all()
    with tenant_scope(clinic.id):
        row = db.session.scalars(sa.select(model)).one()
        db.session.expunge(row)
        return row


def audit(action: str) -> list[AuditEvent]:
    with platform_scope("test"):
        return db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)).all()


def test_a_big_send_waits_and_goes_out_after_a_second_staff_member_approves(app, sandbox, clinic):
    friends = add_friends(sandbox, clinic, 301)
    submitter = signed_in(app, gen_user("sender", clinic=clinic))
    held = send(submitter, clinic, text="来週の土曜日は休診です")
    assert held.status_code == 302 and "/approvals/" in held.headers["Location"]
    drain()
    assert only(Delivery, clinic).status == "pending_approval"
    assert not sandbox.requests(CHANNEL) and not sandbox.inbox(CHANNEL, friends[0]), "nothing before approval"
    approval = only(SendApproval, clinic)

    own = submitter.get(held.headers["Location"]).get_data(as_text=True)
    assert "自分が作成した配信は承認できません" in own and 'data-testid="approve"' not in own
    refused = submitter.post(
        f"/c/{clinic.slug}/approvals/{approval.id}/approve", data={"csrf_token": csrf_token(submitter)}
    )
    assert refused.status_code == 302 and only(SendApproval, clinic).state == "pending"

    approver = signed_in(app, gen_user("sender", clinic=clinic))
    page = approver.get(held.headers["Location"]).get_data(as_text=True)
    assert 'data-testid="audience-count">301<' in page and "来週の土曜日は休診です" in page
    assert "送信先が300人を超えています" in page
    approved = approver.post(
        f"/c/{clinic.slug}/approvals/{approval.id}/approve", data={"csrf_token": csrf_token(approver)}
    )
    assert approved.status_code == 302
    drain()
    assert only(Delivery, clinic).status == "done"
    assert sandbox.inbox(CHANNEL, friends[0])[-1]["message"]["text"] == "来週の土曜日は休診です"
    (event,) = audit("delivery.approve")
    assert event.actor_email == approver.user.email and event.details["recipients"] == 301
    assert audit("delivery.approval.request")[0].actor_email == submitter.user.email


def test_a_small_send_to_an_established_segment_goes_straight_out(app, sandbox, clinic):
    friends = add_friends(sandbox, clinic, 3)
    with tenant_scope(clinic.id):
        tag = Tag(
            name="予防接種希望", created_at=utcnow() - timedelta(hours=2), updated_at=utcnow() - timedelta(hours=2)
        )
        db.session.add(tag)
        db.session.flush()
        friend_ids = db.session.scalars(sa.select(Friend.id)).all()
        db.session.add_all(FriendTag(friend_id=i, tag_id=tag.id) for i in friend_ids)
        db.session.commit()
        tag_id = tag.id
    client = signed_in(app, gen_user("sender", clinic=clinic))
    response = send(client, clinic, audience="segment", tag_ids=str(tag_id), text="予防接種の予約を受付中です")
    assert "/deliveries/" in response.headers["Location"] and "/approvals/" not in response.headers["Location"]
    drain()
    assert sandbox.inbox(CHANNEL, friends[0])[-1]["message"]["text"] == "予防接種の予約を受付中です"


def test_a_segment_built_minutes_ago_waits_for_approval(app, sandbox, clinic):
    add_friends(sandbox, clinic, 3)
    client = signed_in(app, gen_user("sender", clinic=clinic))
    with tenant_scope(clinic.id):
        tag = Tag(name="今作ったタグ")
        db.session.add(tag)
        db.session.commit()
        tag_id = tag.id
    count = client.post(
        f"/c/{clinic.slug}/deliveries/count",
        data={"csrf_token": csrf_token(client), "audience": "segment", "tag_ids": str(tag_id)},
    ).get_data(as_text=True)
    assert 'data-testid="approval-notice"' in count and "数分以内に作成・変更された" in count
    response = send(client, clinic, audience="segment", tag_ids=str(tag_id), text="お知らせ")
    assert "/approvals/" in response.headers["Location"]
    assert only(SendApproval, clinic).reasons == ["fresh_segment"]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "「今作ったタグ」" in page, "the approver reads the segment in words"


def test_a_block_finding_needs_an_admins_approval(app, sandbox, clinic):
    friends = add_friends(sandbox, clinic, 2)
    submitter = signed_in(app, gen_user("sender", clinic=clinic))
    held = send(submitter, clinic, text="当院は地域No.1の実績です")
    approval = only(SendApproval, clinic)
    assert approval.reasons == ["block_finding"] and approval.needs_admin
    assert approval.findings == [{"rule": "superlative", "severity": "block", "phrase": "地域No.1"}]
    colleague = signed_in(app, gen_user("sender", clinic=clinic))
    page = colleague.get(held.headers["Location"]).get_data(as_text=True)
    assert "管理者だけが承認できます" in page and "比較優良広告" in page
    colleague.post(f"/c/{clinic.slug}/approvals/{approval.id}/approve", data={"csrf_token": csrf_token(colleague)})
    drain()
    assert only(SendApproval, clinic).state == "pending" and not sandbox.inbox(CHANNEL, friends[0])
    admin = signed_in(app, gen_user("admin", clinic=clinic))
    admin.post(f"/c/{clinic.slug}/approvals/{approval.id}/approve", data={"csrf_token": csrf_token(admin)})
    drain()
    assert sandbox.inbox(CHANNEL, friends[0])[-1]["message"]["text"] == "当院は地域No.1の実績です"
    assert audit("delivery.approve")[0].details["findings"][0]["rule"] == "superlative"


def test_a_warning_is_acknowledged_on_the_form_and_recorded(app, sandbox, clinic):
    friends = add_friends(sandbox, clinic, 2)
    client = signed_in(app, gen_user("sender", clinic=clinic))
    refused = send(client, clinic, text="ご来院の方にプレゼントがあります")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 422 and 'name="adcheck_ack"' in page and "景品・プレゼント" in page
    with tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(Delivery)).all() == []
    sent = send(client, clinic, text="ご来院の方にプレゼントがあります", adcheck_ack="1")
    assert sent.status_code == 302 and "/approvals/" not in sent.headers["Location"]
    drain()
    assert sandbox.inbox(CHANNEL, friends[0])[-1]["message"]["text"] == "ご来院の方にプレゼントがあります"
    (event,) = audit("adcheck.acknowledge")
    assert event.target_type == "delivery" and event.details["findings"][0]["rule"] == "free_gift"


def test_a_declined_send_sends_nothing_and_is_audited(app, sandbox, clinic):
    friends = add_friends(sandbox, clinic, 301)
    submitter = signed_in(app, gen_user("sender", clinic=clinic))
    send(submitter, clinic, text="お知らせ")
    approval = only(SendApproval, clinic)
    approver = signed_in(app, gen_user("admin", clinic=clinic))
    approver.post(
        f"/c/{clinic.slug}/approvals/{approval.id}/decline",
        data={"csrf_token": csrf_token(approver), "note": "対象が広すぎます"},
    )
    drain()
    assert only(Delivery, clinic).status == "cancelled" and not sandbox.inbox(CHANNEL, friends[0])
    again = approver.post(
        f"/c/{clinic.slug}/approvals/{approval.id}/approve", data={"csrf_token": csrf_token(approver)}
    )
    assert again.status_code == 302 and only(Delivery, clinic).status == "cancelled", "a decision is final"
    assert audit("delivery.decline")[0].details["note"] == "対象が広すぎます"


def test_an_urgent_notice_skips_approval_but_confirms_its_count(app, sandbox, clinic):
    friends = add_friends(sandbox, clinic, 3) + add_friends(sandbox, clinic, 1, consent_marketing=False)
    client = signed_in(app, gen_user("sender", clinic=clinic))
    client.post(f"/c/{clinic.slug}/send-guard", data={"csrf_token": csrf_token(client)})  # not an admin: refused
    with tenant_scope(clinic.id):
        from saas.sendguard.guard import settings_for

        settings_for(clinic.id).approval_threshold = 2
        db.session.commit()
    count = client.post(
        f"/c/{clinic.slug}/deliveries/count", data={"csrf_token": csrf_token(client), "urgent": "1"}
    ).get_data(as_text=True)
    assert re.search(r'name="urgent_confirm" value="4"', count) and "今すぐ 4 人に送る" in count
    refused = send(client, clinic, urgent="1", text="本日は臨時休診です")
    assert refused.status_code == 422 and "今すぐ 4 人に送られます" in refused.get_data(as_text=True)
    stale = send(client, clinic, urgent="1", urgent_confirm="3", text="本日は臨時休診です")
    assert stale.status_code == 422, "a confirmation of another count is not a confirmation"
    sent = send(client, clinic, urgent="1", urgent_confirm="4", text="本日は臨時休診です")
    assert "/approvals/" not in sent.headers["Location"]
    drain()
    assert [sandbox.inbox(CHANNEL, f)[-1]["message"]["text"] for f in friends] == ["本日は臨時休診です"] * 4


def test_another_clinics_approval_is_404_everywhere(app, sandbox, clinic):
    other = connected_clinic(sandbox, "1730000002")
    add_friends(sandbox, other, 301)
    theirs = signed_in(app, gen_user("sender", clinic=other))
    send(theirs, other, text="お知らせ")
    approval = only(SendApproval, other)
    mine = signed_in(app, gen_user("owner", clinic=clinic))
    token = csrf_token(mine)
    assert mine.get(f"/c/{clinic.slug}/approvals/{approval.id}").status_code == 404
    for action in ("approve", "decline", "withdraw"):
        answer = mine.post(f"/c/{clinic.slug}/approvals/{approval.id}/{action}", data={"csrf_token": token})
        assert answer.status_code == 404, action
    assert mine.get(f"/c/{other.slug}/approvals/{approval.id}").status_code == 404
    assert mine.get(f"/c/{clinic.slug}/deliveries/{approval.delivery_id}/approval").status_code == 404
    assert only(SendApproval, other).state == "pending" and only(Delivery, other).status == "pending_approval"


def test_an_api_send_is_held_like_a_portal_send(app, client, sandbox, clinic):
    from tests.api.support import bearer, make_key

    friends = add_friends(sandbox, clinic, 301)
    headers = {**bearer(make_key("sender", clinic=clinic)), "Idempotency-Key": "big-1"}
    body = {"kind": "broadcast", "messages": [{"type": "text", "text": "年末年始の診療のお知らせ"}]}
    answer = client.post(f"/api/v1/clinics/{clinic.slug}/deliveries", json=body, headers=headers)
    assert answer.status_code == 202 and answer.json["status"] == "pending_approval"
    assert answer.json["percent"] == 0  # held, not finished
    drain()
    assert not sandbox.inbox(CHANNEL, friends[0])
    held = client.get(f"/api/v1/clinics/{clinic.slug}/deliveries/{answer.json['id']}", headers=headers).json
    assert (held["status"], held["percent"], held["sent"]) == ("pending_approval", 0, 0)
    approval = only(SendApproval, clinic)
    assert approval.requested_by_email.startswith("api-key:")
    staff = signed_in(app, gen_user("sender", clinic=clinic))
    staff.post(f"/c/{clinic.slug}/approvals/{approval.id}/approve", data={"csrf_token": csrf_token(staff)})
    drain()
    assert sandbox.inbox(CHANNEL, friends[0])[-1]["message"]["text"] == "年末年始の診療のお知らせ"
