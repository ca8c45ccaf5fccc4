"""Every send LINE accepted leaves each recipient exactly one receipt (sandbox over HTTP, real workers)."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.booking import services as booking
from saas.delivery import services
from saas.delivery.jobs import send_chunk
from saas.delivery.models import Delivery, DeliveryChunk
from saas.extensions import db
from saas.friends import hooks
from saas.friends.models import Friend
from saas.privacy import services as privacy
from saas.queues import get_queue
from saas.receipts import services as receipts
from saas.receipts.models import FriendReceipt
from saas.reminders import jobs as reminders
from saas.tenancy.scoping import TenantScopeError, platform_scope, tenant_scope
from tests.booking.support import booking_clinic, tomorrow_at
from tests.delivery.support import HELLO, add_friends, connected_clinic, drain
from tests.helpers import assert_rows_isolated
from tests.inbox.support import friend_of, patient_writes, post, setup_chat
from tests.webhooks.support import connect_clinic, run_jobs


def send(clinic, **fields) -> int:
    with tenant_scope(clinic.id):
        delivery = services.create_delivery(messages=fields.pop("messages", HELLO), **fields)
        services.submit(delivery)
        return delivery.id


def receipts_of(clinic, **where) -> list[FriendReceipt]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        query = sa.select(FriendReceipt).filter_by(**where).order_by(FriendReceipt.id)
        return list(db.session.scalars(query))


def friend_ids(clinic, user_ids) -> dict[str, int]:
    with tenant_scope(clinic.id):
        rows = db.session.execute(sa.select(Friend.line_user_id, Friend.id).where(Friend.line_user_id.in_(user_ids)))
        return dict(rows.all())


def test_a_broadcast_leaves_one_receipt_per_recipient_pointing_at_its_chunk(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1710000001")
    patients = add_friends(sandbox, clinic, 1_100)
    delivery_id = send(clinic, kind="broadcast")
    drain()

    rows = receipts_of(clinic, delivery_id=delivery_id)
    assert sorted(r.friend_id for r in rows) == sorted(friend_ids(clinic, patients).values())
    assert {r.source for r in rows} == {"broadcast"}
    with tenant_scope(clinic.id):
        chunks = dict(db.session.execute(sa.select(DeliveryChunk.id, DeliveryChunk.sent_at)).all())
    assert len(chunks) == 3 and {r.chunk_id for r in rows} == set(chunks)
    assert all(r.sent_at == chunks[r.chunk_id] for r in rows), "a receipt is dated when LINE accepted its chunk"
    assert all(r.preview == "" and r.messages is None for r in rows), "the chunk keeps the content, not 1,100 copies"


def test_a_chunk_answered_429_then_accepted_writes_each_receipt_once(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1710000002")
    patients = add_friends(sandbox, clinic, 600)
    sandbox.configure("1710000002", fail_next=[429, 500, 429])
    delivery_id = send(clinic, kind="segment", segment={})
    drain()

    statuses = [r["status"] for r in sandbox.requests("1710000002") if r["operation"] == "multicast"]
    assert sorted(statuses) == [200, 200, 429, 429, 500]
    rows = receipts_of(clinic, delivery_id=delivery_id)
    assert len(rows) == 600 and len({r.friend_id for r in rows}) == 600
    assert set(friend_ids(clinic, patients).values()) == {r.friend_id for r in rows}


def test_a_chunk_sent_again_after_a_lost_answer_does_not_count_anyone_twice(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1710000003")
    add_friends(sandbox, clinic, 20)
    delivery_id = send(clinic, kind="broadcast")
    drain()
    with tenant_scope(clinic.id):  # as if the worker died before recording LINE's answer
        db.session.execute(sa.update(DeliveryChunk).values(status="pending", sent=0, request_id=None))
        db.session.execute(sa.update(Delivery).where(Delivery.id == delivery_id).values(status="sending"))
        db.session.commit()
        chunk_id = db.session.scalar(sa.select(DeliveryChunk.id))
    get_queue("bulk").enqueue(send_chunk, chunk_id, clinic.id)
    drain()

    assert [r["status"] for r in sandbox.requests("1710000003") if r["operation"] == "multicast"] == [200, 409]
    assert len(receipts_of(clinic, delivery_id=delivery_id)) == 20


def test_personalised_pushes_leave_receipts_and_an_erased_friend_gets_none(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1710000004")
    patients = add_friends(sandbox, clinic, 4)
    sandbox.configure("1710000004", fail_next=[429])
    delivery_id = send(clinic, kind="broadcast", messages=[{"type": "text", "text": "{{friend.display_name}}様"}])
    with tenant_scope(clinic.id):
        erased = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == patients[0]))
        erased_id = erased.id
    drain()

    rows = receipts_of(clinic, delivery_id=delivery_id)
    assert len(rows) == 4 and {r.source for r in rows} == {"broadcast"}
    with tenant_scope(clinic.id):
        privacy.erase(db.session.get(Friend, erased_id))
        db.session.commit()
    assert len(receipts_of(clinic, friend_id=erased_id)) == 1, "the row stays for the delivery's counts"


def test_a_coupon_push_is_marked_as_a_coupon(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1710000005")
    add_friends(sandbox, clinic, 1)
    with tenant_scope(clinic.id):
        friend_id = db.session.scalar(sa.select(Friend.id))
        delivery = services.create_delivery(messages=HELLO, kind="push", friend_id=friend_id, source="coupon")
        services.submit(delivery)
        delivery_id = delivery.id
    drain()
    assert [(r.friend_id, r.source) for r in receipts_of(clinic, delivery_id=delivery_id)] == [(friend_id, "coupon")]


def test_a_booking_reminder_leaves_a_receipt_with_what_was_sent_once(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "田中 太郎")
    sandbox.follow(channel, patient)
    run_jobs()
    with tenant_scope(clinic.id):
        made = booking.book(clinic, line_user_id=patient, patient_name="田中 太郎", starts_at=tomorrow_at(clinic))
        due, booking_id = made.reminder_at, made.id
    reminders.scan_due(now=due)
    reminders.scan_due(now=due + timedelta(minutes=1))
    run_jobs()

    sent = [(r.source, r.ref_id) for r in receipts_of(clinic)]
    assert sent == [("reminder", booking_id)]
    reminder = receipts_of(clinic, source="reminder")[0]
    assert reminder.preview.startswith("【明日のご予約】")
    assert reminder.messages[0]["text"].startswith("【明日のご予約】")


def test_a_greeting_and_a_staff_reply_leave_receipts_pointing_at_the_conversation(
    sandbox, live_server, client, first_responders
):
    first_responders(hooks._follow_responders, lambda clinic, friend, event: [{"type": "text", "text": "ようこそ"}])
    clinic, channel, _ = setup_chat(sandbox, live_server, client)
    patient = patient_writes(sandbox, channel, "伊藤 健", "駐車場はありますか")
    friend = friend_of(clinic, patient)
    post(client, f"/c/{clinic.slug}/inbox/{friend.id}/send", {"text": "はい、5台あります", "via": "push"})
    run_jobs()

    rows = receipts_of(clinic, friend_id=friend.id)
    assert [r.source for r in rows][0] == "greeting" and rows[-1].source == "staff"
    assert all(r.message_id for r in rows) and rows[-1].messages is None and rows[-1].preview == ""


def test_receipts_are_isolated_between_clinics(sandbox, live_server):
    a_id, b_id = (connect_clinic(sandbox, live_server)[0].id for _ in range(2))
    ids = []
    for clinic_id in (a_id, b_id):
        with tenant_scope(clinic_id):
            ids.append(receipts.record(7, "push", messages=HELLO))
            db.session.commit()
            ids[-1] = ids[-1].id
    with platform_scope("test"):
        rows = [db.session.get(FriendReceipt, found) for found in ids]
    assert_rows_isolated(FriendReceipt, rows[0], rows[1])
    with tenant_scope(a_id), pytest.raises(TenantScopeError):
        receipts.record_chunk(b_id, 1, 1, [7], "broadcast")
    db.session.rollback()
