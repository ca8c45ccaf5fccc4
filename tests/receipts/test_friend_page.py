"""The friend page shows what the friend received (and, to chat readers, what it said) and their bookings."""

from __future__ import annotations

from saas.booking import services as booking
from saas.tenancy.scoping import tenant_scope
from tests.booking.support import booking_clinic, tomorrow_at
from tests.factories import gen_user
from tests.helpers import login
from tests.inbox.support import friend_of, patient_writes
from tests.receipts.test_timeline import _send


def _friend_page(client, clinic, friend_id: int) -> str:
    response = client.get(f"/c/{clinic.slug}/friends/{friend_id}")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_the_friend_page_lists_receipts_and_bookings_and_hides_content_from_an_analyst(
    app, sandbox, live_server, client
):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = patient_writes(sandbox, channel, "森 由美", "予約したいです")
    friend = friend_of(clinic, patient)
    delivery_id = _send(clinic, [{"type": "text", "text": "インフルエンザ予防接種の予約を開始しました"}], kind="urgent",
                        title="予防接種のご案内")  # fmt: skip
    with tenant_scope(clinic.id):
        booking.book(clinic, line_user_id=patient, patient_name="森 由美", starts_at=tomorrow_at(clinic))

    login(client, gen_user("admin", clinic=clinic))
    page = _friend_page(client, clinic, friend.id)
    received = page[page.index('data-testid="friend-received"') :]
    assert "緊急のお知らせ" in received and "インフルエンザ予防接種の予約を開始しました" in received
    assert f'href="/c/{clinic.slug}/deliveries/{delivery_id}"' in received and "予防接種のご案内" in received
    assert 'data-testid="friend-bookings"' in page and "予約中" in page

    analyst = app.test_client()
    login(analyst, gen_user("analyst", clinic=clinic))
    page = _friend_page(analyst, clinic, friend.id)
    received = page[page.index('data-testid="friend-received"') :]
    assert "緊急のお知らせ" in received
    assert "予防接種のご案内" not in received, "a title is often the message's first words: not for an analyst"
    assert f"/deliveries/{delivery_id}" not in received, "no link to a page the analyst cannot open"
    assert "インフルエンザ予防接種の予約を開始しました" not in page, "an analyst sees kinds and times, not message text"


def test_a_friend_with_nothing_received_says_so(sandbox, live_server, client):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    friend = friend_of(clinic, patient_writes(sandbox, channel, "林 一郎", "こんにちは"))
    login(client, gen_user("admin", clinic=clinic))
    assert "この友だちに届いたメッセージの記録はまだありません" in _friend_page(client, clinic, friend.id)
