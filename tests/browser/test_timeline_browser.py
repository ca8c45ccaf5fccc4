"""A responder opens a patient's conversation and sees the broadcast that patient received, marked 一斉配信,
between the chat messages; a notice sent while the page is open joins it without a reload."""

from __future__ import annotations

import sqlalchemy as sa
from playwright.sync_api import expect

from saas.extensions import db
from saas.friends.models import Friend
from saas.tenancy.scoping import tenant_scope
from tests.browser_fixtures import sign_in
from tests.factories import gen_user
from tests.inbox.support import friend_of, patient_writes
from tests.receipts.test_timeline import _send
from tests.webhooks.support import connect_clinic


def test_the_conversation_shows_the_broadcast_the_patient_received(page, sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server, name="みなと小児科")
    responder = gen_user("responder", clinic=clinic)
    patient = patient_writes(sandbox, channel, "山本 結衣", "予防接種の予約はできますか")
    friend = friend_of(clinic, patient)
    with tenant_scope(clinic.id):
        db.session.execute(sa.update(Friend).where(Friend.id == friend.id).values(consent_marketing=True))
        db.session.commit()
    _send(clinic, [{"type": "text", "text": "12月の予防接種の予約を受け付けています"}], title="12月の予防接種")
    assert [m["message"]["text"] for m in sandbox.inbox(channel, patient)] == ["12月の予防接種の予約を受け付けています"]

    sign_in(page, responder, landing="**/c/**")
    page.goto(f"/c/{clinic.slug}/inbox/{friend.id}")
    broadcast = page.locator(".received-row", has_text="12月の予防接種の予約を受け付けています")
    expect(broadcast).to_be_visible()
    expect(broadcast.get_by_test_id("received-kind")).to_have_text("一斉配信")
    chat = page.locator("#conversation .bubble-row")
    expect(chat.first).to_contain_text("予防接種の予約はできますか")
    expect(chat.last).to_contain_text("12月の予防接種の予約を受け付けています")

    _send(clinic, [{"type": "text", "text": "本日は臨時休診です"}], kind="urgent")
    live = page.locator(".received-row", has_text="本日は臨時休診です")
    expect(live).to_be_visible(timeout=20000)  # the conversation polls every 5 s
    expect(live.get_by_test_id("received-kind")).to_have_text("緊急のお知らせ")
    expect(page.locator(".received-row")).to_have_count(2)
