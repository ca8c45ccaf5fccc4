"""Conversions: a booking after a delivery the friend received counts for that delivery, within the
clinic's window and not outside it; the attribution is stored by a job when the booking happens."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from saas.analytics.models import Conversion
from saas.common import utcnow
from saas.delivery import services as deliveries
from saas.extensions import db
from saas.friends.models import Friend
from saas.receipts.services import record_chunk
from saas.tenancy.scoping import tenant_scope
from tests.analytics.support import add_booking, add_friends, chart, japan_time, run_jobs, total
from tests.conftest import csrf_token
from tests.delivery.support import add_friends as add_line_friends
from tests.delivery.support import connected_clinic, drain
from tests.factories import gen_clinic, gen_user
from tests.helpers import login


def _conversion(clinic_id: int, booking_id: int) -> Conversion | None:
    with tenant_scope(clinic_id):
        return db.session.scalar(sa.select(Conversion).where(Conversion.ref_id == booking_id))


def _delivery(clinic_id: int, title: str) -> int:
    with tenant_scope(clinic_id):
        delivery = deliveries.create_delivery(messages=[{"type": "text", "text": title}], title=title)
        db.session.commit()
        return delivery.id


def test_a_booking_after_a_broadcast_through_the_sandbox_counts_for_it(client, sandbox):
    clinic = connected_clinic(sandbox, "1740000001")
    add_line_friends(sandbox, clinic, 3)
    with tenant_scope(clinic.id):
        friend_id = db.session.scalars(sa.select(Friend.id).order_by(Friend.id)).first()
        delivery = deliveries.create_delivery(messages=[{"type": "text", "text": "インフルエンザ予防接種のご案内"}])
        deliveries.submit(delivery)
        delivery_id = delivery.id
    drain()
    booking_id = add_booking(clinic.id, friend_id, utcnow())
    run_jobs()

    conversion = _conversion(clinic.id, booking_id)
    assert conversion.received_delivery_id == delivery_id and conversion.window_days == 7
    login(client, gen_user("analyst", clinic=clinic))  # analysts see no titles: a title is often the text
    html = client.get(f"/c/{clinic.slug}/analytics/").get_data(as_text=True)
    assert total(html, "conversions") == "1" and "インフルエンザ" not in html
    drawn = chart(html, "conversions")
    assert drawn["labels"] == [f"#{delivery_id}"] and drawn["予約"] == [1]
    csv = client.get(f"/c/{clinic.slug}/analytics/conversions.csv").data.decode("utf-8-sig")
    assert csv.splitlines()[1:] == [f"#{delivery_id},1,0,0,0,0"]
    client.get("/auth/logout")
    login(client, gen_user("owner", clinic=clinic))  # a chat reader and sender sees what was sent
    html = client.get(f"/c/{clinic.slug}/analytics/").get_data(as_text=True)
    assert chart(html, "conversions")["labels"] == [f"#{delivery_id} インフルエンザ予防接種のご案内"]
    assert client.get(f"/c/{clinic.slug}/analytics/conversions.csv").data.decode("utf-8-sig").splitlines()[1:] == [
        f"#{delivery_id} インフルエンザ予防接種のご案内,1,0,0,0,0"
    ]


def test_only_the_last_delivery_inside_the_window_takes_the_credit():
    clinic = gen_clinic()
    (friend,) = add_friends(clinic.id, {"followed_at": japan_time(30)})
    old, recent, other_friends = (
        _delivery(clinic.id, "古い配信"),
        _delivery(clinic.id, "最近の配信"),
        _delivery(clinic.id, "他"),
    )
    with tenant_scope(clinic.id):
        record_chunk(clinic.id, old, 1, [friend], "broadcast", sent_at=utcnow() - timedelta(days=6))
        record_chunk(clinic.id, recent, 2, [friend], "broadcast", sent_at=utcnow() - timedelta(days=2))
        record_chunk(clinic.id, other_friends, 3, [friend + 1000], "broadcast", sent_at=utcnow() - timedelta(hours=1))
        db.session.commit()
    booking = add_booking(clinic.id, friend, utcnow())
    run_jobs()
    assert _conversion(clinic.id, booking).received_delivery_id == recent


def test_a_booking_outside_the_window_is_stored_unattributed():
    clinic = gen_clinic()
    (friend,) = add_friends(clinic.id, {"followed_at": japan_time(30)})
    delivery = _delivery(clinic.id, "お知らせ")
    with tenant_scope(clinic.id):
        record_chunk(clinic.id, delivery, 1, [friend], "broadcast", sent_at=utcnow() - timedelta(days=8))
        db.session.commit()
    booking = add_booking(clinic.id, friend, utcnow())
    run_jobs()
    run_jobs()  # a second run changes nothing
    conversion = _conversion(clinic.id, booking)
    assert conversion.received_delivery_id is None and conversion.window_days == 7


def test_an_admin_widens_the_window_and_later_bookings_use_it(client):
    clinic = gen_clinic()
    (friend,) = add_friends(clinic.id, {"followed_at": japan_time(30)})
    delivery = _delivery(clinic.id, "お知らせ")
    with tenant_scope(clinic.id):
        record_chunk(clinic.id, delivery, 1, [friend], "broadcast", sent_at=utcnow() - timedelta(days=8))
        db.session.commit()
    login(client, gen_user("admin", clinic=clinic))
    token = csrf_token(client)
    assert (
        client.post(
            f"/c/{clinic.slug}/analytics/settings", data={"attribution_days": "0", "csrf_token": token}
        ).status_code
        == 302
    )
    assert (
        client.post(f"/c/{clinic.slug}/analytics/settings", data={"attribution_days": "14"}).status_code == 400
    )  # no CSRF token
    response = client.post(f"/c/{clinic.slug}/analytics/settings", data={"attribution_days": "14", "csrf_token": token})
    assert response.status_code == 302
    assert 'value="14"' in client.get(f"/c/{clinic.slug}/analytics/").get_data(as_text=True)
    booking = add_booking(clinic.id, friend, utcnow())
    run_jobs()
    conversion = _conversion(clinic.id, booking)
    assert (conversion.received_delivery_id, conversion.window_days) == (delivery, 14)


def test_an_analyst_sees_the_window_but_cannot_change_it(client):
    clinic = gen_clinic()
    login(client, gen_user("analyst", clinic=clinic))
    html = client.get(f"/c/{clinic.slug}/analytics/").get_data(as_text=True)
    assert "7日以内" in html and 'name="attribution_days"' not in html
    response = client.post(
        f"/c/{clinic.slug}/analytics/settings", data={"attribution_days": "30", "csrf_token": csrf_token(client)}
    )
    assert response.status_code == 403


def test_the_delivery_report_shows_reach_and_conversions_and_hides_other_clinics(client, sandbox):
    clinic = connected_clinic(sandbox, "1740000002")
    add_line_friends(sandbox, clinic, 4)
    with tenant_scope(clinic.id):
        friend_id = db.session.scalars(sa.select(Friend.id).order_by(Friend.id)).first()
        delivery = deliveries.create_delivery(messages=[{"type": "text", "text": "健診のご案内"}], title="健診のご案内")
        deliveries.submit(delivery)
        delivery_id = delivery.id
    drain()
    add_booking(clinic.id, friend_id, utcnow())
    run_jobs()
    other = gen_clinic()
    foreign = _delivery(other.id, "他院の配信")

    login(client, gen_user("analyst", clinic=clinic))
    html = client.get(f"/c/{clinic.slug}/analytics/").get_data(as_text=True)
    assert f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/" in html
    html = client.get(f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/").get_data(as_text=True)
    assert "健診のご案内" not in html and f"配信レポート：#{delivery_id}" in html  # no title for analysts
    assert (
        total(html, "reach") == "4" and total(html, "conversions") == "1" and total(html, "conversion-rate") == "25.0%"
    )
    assert chart(html, "conversions")["最後に受け取った配信"] == [1, 0, 0, 0]
    assert chart(html, "conversions")["最後にクリックした配信"] == [0, 0, 0, 0]  # the broadcast had no link
    csv = client.get(f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/conversions.csv").data.decode("utf-8-sig")
    assert csv.splitlines()[1] == "予約,1,0"
    assert client.get(f"/c/{clinic.slug}/analytics/deliveries/{foreign}/").status_code == 404
    assert client.get(f"/c/{clinic.slug}/analytics/deliveries/{foreign}/conversions.csv").status_code == 404
    client.get("/auth/logout")
    login(client, gen_user("viewer", clinic=clinic))
    assert client.get(f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/").status_code == 403


def test_the_nightly_catch_up_attributes_a_booking_whose_job_redis_lost():
    from saas.analytics import jobs
    from saas.queues import get_redis

    clinic = gen_clinic()
    (friend,) = add_friends(clinic.id, {"followed_at": japan_time(30)})
    delivery = _delivery(clinic.id, "お知らせ")
    with tenant_scope(clinic.id):
        record_chunk(clinic.id, delivery, 1, [friend], "broadcast", sent_at=utcnow() - timedelta(days=1))
        db.session.commit()
    booking = add_booking(clinic.id, friend, utcnow())
    get_redis().flushdb()  # the attribution job is gone
    assert _conversion(clinic.id, booking) is None
    from saas.queues import get_queue

    get_queue("bulk").enqueue(jobs.catch_up_rollups)
    run_jobs()
    assert _conversion(clinic.id, booking).received_delivery_id == delivery
    assert jobs.attribute_missed() == 0
