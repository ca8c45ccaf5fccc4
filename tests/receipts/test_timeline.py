"""Staff see in the 1:1 conversation every message the patient received, as it was sent, marked by kind."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from saas.booking import jobs as booking_jobs
from saas.booking import services as booking
from saas.common import JAPAN, to_local, utcnow
from saas.delivery import services
from saas.extensions import db
from saas.friends.models import Friend
from saas.reminders import jobs as reminders
from saas.steps import clock, enrolments
from saas.steps.models import StepScenario
from saas.tenancy.scoping import tenant_scope
from tests.booking.support import booking_clinic, tomorrow_at
from tests.delivery.support import drain
from tests.factories import gen_user
from tests.helpers import login
from tests.inbox.support import friend_of, patient_writes, setup_chat
from tests.steps.support import japan, scenario, text, tick
from tests.webhooks.support import run_jobs


def _consenting(clinic, friend_id: int) -> None:
    with tenant_scope(clinic.id):
        db.session.execute(sa.update(Friend).where(Friend.id == friend_id).values(consent_marketing=True))
        db.session.commit()


def _send(clinic, messages: list[dict], **fields) -> int:
    with tenant_scope(clinic.id):
        delivery = services.create_delivery(messages=messages, **fields)
        services.submit(delivery)
        delivery_id = delivery.id
    drain()
    return delivery_id


def _conversation(client, clinic, friend_id: int) -> str:
    response = client.get(f"/c/{clinic.slug}/inbox/{friend_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    return page[page.index('id="conversation"') :]  # the conversation itself, not the list beside it


def _order(page: str, *texts: str) -> list[int]:
    return [page.index(text) for text in texts]


def test_a_broadcast_shows_in_the_conversation_between_the_chat_marked_and_linked(sandbox, live_server, client):
    clinic, channel, _ = setup_chat(sandbox, live_server, client, role="admin")
    patient = patient_writes(sandbox, channel, "佐藤 花子", "予約できますか")
    friend = friend_of(clinic, patient)
    _consenting(clinic, friend.id)
    delivery_id = _send(clinic, [{"type": "text", "text": "年末年始の休診のお知らせです"}], title="年末年始のお知らせ")
    patient_writes(sandbox, channel, "", "了解です", user_id=patient)

    page = _conversation(client, clinic, friend.id)
    first, broadcast, after = _order(page, "予約できますか", "年末年始の休診のお知らせです", "了解です")
    assert first < broadcast < after, "interleaved by time with the chat"
    assert 'data-testid="received-kind">一斉配信</span>' in page
    assert f'href="/c/{clinic.slug}/deliveries/{delivery_id}"' in page


def test_the_friend_sees_their_own_rendering_and_a_flex_is_summarised(sandbox, live_server, client):
    clinic, channel, _ = setup_chat(sandbox, live_server, client, role="responder")
    patient = patient_writes(sandbox, channel, "田中 太郎", "こんにちは")
    friend = friend_of(clinic, patient)
    _consenting(clinic, friend.id)
    _send(clinic, [{"type": "text", "text": "{{friend.display_name}}さま、健診のご案内です"}], kind="segment")
    flex = {
        "type": "flex",
        "altText": "健診キャンペーン",
        "contents": {"type": "bubble", "body": {"type": "box", "layout": "vertical",
                     "contents": [{"type": "text", "text": "特定健診は無料です"}]}},
    }  # fmt: skip
    _send(clinic, [flex], kind="urgent")

    page = _conversation(client, clinic, friend.id)
    assert "田中 太郎さま、健診のご案内です" in page, "what this patient received, not the template"
    assert "{{friend.display_name}}" not in page
    assert "健診キャンペーン" in page and "特定健診は無料です" in page
    assert (
        'data-testid="received-kind">セグメント配信<' in page and 'data-testid="received-kind">緊急のお知らせ<' in page
    )
    assert "/deliveries/" not in page, "a responder cannot open delivery pages: no link"


def test_sent_text_is_escaped(sandbox, live_server, client):
    clinic, channel, _ = setup_chat(sandbox, live_server, client)
    patient = patient_writes(sandbox, channel, "伊藤 健", "はい")
    friend = friend_of(clinic, patient)
    _send(clinic, [{"type": "text", "text": "<script>alert(1)</script>"}], kind="urgent")
    page = _conversation(client, clinic, friend.id)
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_send_after_the_page_opened_arrives_with_the_poll_once(sandbox, live_server, client):
    clinic, channel, _ = setup_chat(sandbox, live_server, client)
    patient = patient_writes(sandbox, channel, "高橋 美咲", "はい")
    friend = friend_of(clinic, patient)
    page = _conversation(client, clinic, friend.id)
    poll = re.search(r'hx-get="([^"]*/messages[^"]*)"', page).group(1).replace("&amp;", "&")
    _send(clinic, [{"type": "text", "text": "台風のため休診します"}], kind="urgent")

    fresh = client.get(poll).get_data(as_text=True)
    assert "台風のため休診します" in fresh and "緊急のお知らせ" in fresh
    again = re.search(r'hx-get="([^"]*/messages[^"]*)"', fresh).group(1).replace("&amp;", "&")
    assert "台風のため休診します" not in client.get(again).get_data(as_text=True)


def test_another_clinics_staff_cannot_open_the_timeline(sandbox, live_server, client):
    clinic, channel, _ = setup_chat(sandbox, live_server, client)
    patient = patient_writes(sandbox, channel, "中村 さくら", "はい")
    friend = friend_of(clinic, patient)
    _send(clinic, [{"type": "text", "text": "院内のお知らせ"}], kind="urgent")
    other, _, _ = setup_chat(sandbox, live_server, client)
    login(client, gen_user("admin", clinic=other))
    assert client.get(f"/c/{other.slug}/inbox/{friend.id}").status_code == 404
    assert client.get(f"/c/{other.slug}/inbox/{friend.id}/messages?after_receipt=0").status_code == 404


def _statements(client, url: str) -> int:
    seen: list[str] = []
    listener = lambda conn, cursor, statement, *args: seen.append(statement)  # noqa: E731
    sa.event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert client.get(url).status_code == 200
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", listener)
    return len(seen)


def test_the_conversation_runs_as_many_queries_for_one_send_as_for_many(sandbox, live_server, client):
    clinic, channel, _ = setup_chat(sandbox, live_server, client)
    patient = patient_writes(sandbox, channel, "小林 誠", "はい")
    friend = friend_of(clinic, patient)
    url = f"/c/{clinic.slug}/inbox/{friend.id}"
    _send(clinic, [{"type": "text", "text": "お知らせ1"}], kind="urgent")
    _send(clinic, [{"type": "text", "text": "{{friend.display_name}}さま"}], kind="urgent")  # a push chunk
    one_of_each = _statements(client, url)
    for n in range(4):
        _send(clinic, [{"type": "text", "text": f"お知らせ{n + 2}"}], kind="urgent")
        _send(clinic, [{"type": "text", "text": f"{{{{friend.display_name}}}}さま{n}"}], kind="urgent")
    assert _statements(client, url) == one_of_each


def test_a_step_a_booking_notice_its_reminder_and_a_coupon_show_in_the_conversation_marked_by_kind(
    sandbox, live_server, client
):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "田中 太郎")
    sandbox.follow(channel, patient)
    run_jobs()
    friend = friend_of(clinic, patient)
    _consenting(clinic, friend.id)
    first_step = {"name": "ご挨拶", "delay_kind": "after_start", "delay_value": 0, "delay_unit": "minutes"}
    chosen = scenario(clinic, "初診後フォロー", [first_step | {"messages": text("ご来院ありがとうございました")}])
    at = japan(to_local(utcnow(), JAPAN).date() + timedelta(days=1), 10)  # a daytime send, whenever CI runs
    with clock.frozen(at), tenant_scope(clinic.id):
        enrolments.start(db.session.get(Friend, friend.id), db.session.get(StepScenario, chosen), "manual")
        db.session.commit()
    tick(at + timedelta(minutes=1))
    with tenant_scope(clinic.id):
        made = booking.book(clinic, line_user_id=patient, patient_name="田中 太郎", starts_at=tomorrow_at(clinic))
        booking_jobs.enqueue_confirmation(made)  # as the booking page does
        due = made.reminder_at
    run_jobs()
    reminders.scan_due(now=due)
    reminders.scan_due(now=due + timedelta(minutes=1))
    run_jobs()
    with tenant_scope(clinic.id):
        coupon = [{"type": "text", "text": "初診の方へ：次回使えるクーポンです"}]
        services.submit(services.create_delivery(messages=coupon, kind="push", friend_id=friend.id, source="coupon"))
    drain()

    login(client, gen_user("admin", clinic=clinic))
    page = _conversation(client, clinic, friend.id)
    kinds = re.findall(r'data-testid="received-kind">([^<]+)<', page)
    assert {"ステップ", "予約のお知らせ", "リマインド", "クーポン"} <= set(kinds), kinds
    assert "ご来院ありがとうございました" in page and "初診の方へ：次回使えるクーポンです" in page
    assert "【明日のご予約】" in page
