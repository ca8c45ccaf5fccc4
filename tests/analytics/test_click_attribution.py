"""Last-clicked attribution: a booking after a patient tapped a delivery's tracked link counts for that
delivery as clicked (next to the last delivery received); taps are rolled up per day, per delivery
and per Japan hour by the same dirty marks as every other event."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.analytics.marks import DIRTY_KEY
from saas.analytics.models import ClickHour, ClinicDay, Conversion, DeliveryClickDay
from saas.analytics.rollup import JAPAN_OFFSET, japan_today
from saas.common import utcnow
from saas.delivery import services as deliveries
from saas.extensions import db
from saas.friends.models import Friend
from saas.links.models import LinkClick
from saas.queues import get_redis
from saas.tenancy.scoping import tenant_scope
from tests.analytics.support import add_booking, chart, csv_rows, run_jobs, total
from tests.delivery import conftest as pipeline
from tests.delivery.support import add_friends, connected_clinic, drain
from tests.factories import gen_user
from tests.helpers import login
from tests.links.test_links import PATIENT, codes_in, inbox

SITE = "https://tsunagu-naika.example.jp/flu?id=3"
WITH_LINK = [{"type": "text", "text": f"インフルエンザ予防接種の予約が始まりました。\n{SITE}"}]
WITHOUT_LINK = [{"type": "text", "text": "年末年始の休診のお知らせ"}]


fast_retries = pipeline.fast_retries  # the pipeline's fixtures: short back-off, the sandbox's state


@pytest.fixture
def state(sandbox_server):
    return sandbox_server.app.extensions["line_sandbox"]


def _send(clinic, messages, title: str) -> int:
    with tenant_scope(clinic.id):
        delivery = deliveries.create_delivery(messages=messages, title=title)
        deliveries.submit(delivery)
        delivery_id = delivery.id
    drain()
    return delivery_id


def _friend(clinic, user_id: str) -> int:
    with tenant_scope(clinic.id):
        return db.session.scalar(sa.select(Friend.id).where(Friend.line_user_id == user_id))


def _tap(client, code: str):
    return client.get(f"/l/{code}", headers={"User-Agent": PATIENT})


def _conversion(clinic_id: int, booking_id: int) -> Conversion:
    db.session.expire_all()
    with tenant_scope(clinic_id):
        return db.session.scalar(sa.select(Conversion).where(Conversion.ref_id == booking_id))


def test_a_booking_after_a_tap_counts_for_the_clicked_delivery_and_the_page_and_csv_show_it(client, sandbox, state):
    clinic = connected_clinic(sandbox, "1750000101")
    patient, other = add_friends(sandbox, clinic, 2)
    clicked_id = _send(clinic, WITH_LINK, "予防接種のご案内")
    code = codes_in(inbox(state, clinic, patient))[0]
    answer = _tap(client, code)
    assert answer.status_code == 302 and answer.headers["Location"] == SITE
    assert f"{clinic.id}:{japan_today().isoformat()}".encode() in get_redis().smembers(DIRTY_KEY)
    received_id = _send(clinic, WITHOUT_LINK, "休診のお知らせ")  # received later, never clicked

    booking = add_booking(clinic.id, _friend(clinic, patient), utcnow())
    run_jobs()
    conversion = _conversion(clinic.id, booking)
    assert (conversion.clicked_delivery_id, conversion.received_delivery_id) == (clicked_id, received_id)
    assert conversion.clicked_at is not None and conversion.clicked_at < conversion.occurred_at

    login(client, gen_user("analyst", clinic=clinic))
    html = client.get(f"/c/{clinic.slug}/analytics/").get_data(as_text=True)
    assert total(html, "clicks") == "1" and total(html, "clicked-conversions") == "1"
    drawn = chart(html, "conversions")
    by_label = dict(zip(drawn["labels"], drawn["クリック経由（最後にクリックした配信）"], strict=True))
    assert by_label == {f"#{received_id}": 0, f"#{clicked_id}": 1}  # no titles for analysts
    assert chart(html, "sending")["リンクのクリック"][-1] == 1
    header, *rows = csv_rows(client.get(f"/c/{clinic.slug}/analytics/conversions.csv").data)
    assert header[-1] == "クリック経由（最後にクリックした配信）"
    assert [f"#{clicked_id}", "0", "0", "0", "0", "1"] in rows
    assert [f"#{received_id}", "1", "0", "0", "0", "0"] in rows


def test_taps_are_rolled_up_per_day_per_delivery_and_per_japan_hour(client, sandbox, state):
    clinic = connected_clinic(sandbox, "1750000102")
    first, second = add_friends(sandbox, clinic, 2)
    delivery_id = _send(clinic, WITH_LINK, "予防接種のご案内")
    first_code, second_code = (codes_in(inbox(state, clinic, user))[0] for user in (first, second))
    hour_before = (utcnow() + JAPAN_OFFSET).hour
    for code in (first_code, first_code, second_code):
        _tap(client, code)
    client.get(f"/l/{first_code}", headers={"User-Agent": "facebookexternalhit/1.1;line-poker/1.0"})  # a preview
    run_jobs()

    hour_after = (utcnow() + JAPAN_OFFSET).hour
    with tenant_scope(clinic.id):
        day = db.session.scalar(sa.select(ClinicDay).where(ClinicDay.day == japan_today()))
        per_delivery = db.session.scalars(sa.select(DeliveryClickDay)).all()
        hours = db.session.scalars(sa.select(ClickHour)).all()
    assert day.clicks == 3
    assert [(r.delivery_id, r.day, r.clicks, r.friends) for r in per_delivery] == [(delivery_id, japan_today(), 3, 2)]
    assert [(r.day, r.hour, r.clicks) for r in hours] in (
        [(japan_today(), hour_before, 3)],
        [(japan_today(), hour_after, 3)],
    )
    run_jobs()  # a second run (and the nightly catch-up) recomputes the same numbers
    from saas.analytics.jobs import catch_up

    catch_up(clinic_ids=[clinic.id])
    db.session.expire_all()
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.sum(DeliveryClickDay.clicks))) == 3
        assert db.session.scalar(sa.select(sa.func.sum(ClickHour.clicks))) == 3


def test_a_booking_without_a_tap_in_the_window_is_attributed_as_received_only(client, sandbox, state):
    clinic = connected_clinic(sandbox, "1750000103")
    (patient,) = add_friends(sandbox, clinic, 1)
    delivery_id = _send(clinic, WITH_LINK, "予防接種のご案内")
    _tap(client, codes_in(inbox(state, clinic, patient))[0])
    with tenant_scope(clinic.id):  # the tap was eight days ago: outside the 7-day window
        db.session.execute(sa.update(LinkClick).values(clicked_at=utcnow() - timedelta(days=8)))
        db.session.commit()
    booking = add_booking(clinic.id, _friend(clinic, patient), utcnow())
    run_jobs()
    conversion = _conversion(clinic.id, booking)
    assert (conversion.clicked_delivery_id, conversion.received_delivery_id) == (None, delivery_id)


def test_a_tap_in_another_clinic_never_attributes_across_tenants(client, sandbox, state):
    clinic = connected_clinic(sandbox, "1750000104")
    other = connected_clinic(sandbox, "1750000105")
    (patient,) = add_friends(sandbox, clinic, 1)
    (elsewhere,) = add_friends(sandbox, other, 1)
    foreign_id = _send(other, WITH_LINK, "他院の配信")
    _tap(client, codes_in(inbox(state, other, elsewhere))[0])
    friend_id = _friend(clinic, patient)
    with tenant_scope(other.id):  # even a click row of the other clinic naming this clinic's friend id
        db.session.execute(sa.update(LinkClick).values(friend_id=friend_id))
        db.session.commit()
    booking = add_booking(clinic.id, friend_id, utcnow())
    run_jobs()
    conversion = _conversion(clinic.id, booking)
    assert conversion.clicked_delivery_id is None and conversion.received_delivery_id is None
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(DeliveryClickDay)) == 0
    with tenant_scope(other.id):
        assert db.session.scalar(sa.select(DeliveryClickDay.delivery_id)) == foreign_id


def test_a_tap_still_redirects_and_counts_when_redis_is_down(app, client, sandbox, state):
    from tests.faults.processes import free_port

    clinic = connected_clinic(sandbox, "1750000106")
    (patient,) = add_friends(sandbox, clinic, 1)
    _send(clinic, WITH_LINK, "予防接種のご案内")
    code = codes_in(inbox(state, clinic, patient))[0]
    saved = app.config["REDIS_URL"], app.extensions.pop("tsunagu_redis", None)
    app.config["REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    try:
        answer = _tap(client, code)
    finally:
        app.extensions.pop("tsunagu_redis", None)
        app.config["REDIS_URL"] = saved[0]
        if saved[1] is not None:
            app.extensions["tsunagu_redis"] = saved[1]
    assert answer.status_code == 302 and answer.headers["Location"] == SITE
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LinkClick)) == 1
    from saas.analytics.jobs import catch_up

    catch_up(clinic_ids=[clinic.id])  # the nightly catch-up counts what no mark announced
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(ClinicDay.clicks).where(ClinicDay.day == japan_today())) == 1


def test_the_friend_page_shows_what_the_friend_clicked_and_hides_titles_from_analysts(client, sandbox, state):
    clinic = connected_clinic(sandbox, "1750000107")
    patient, quiet = add_friends(sandbox, clinic, 2)
    delivery_id = _send(clinic, WITH_LINK, "予防接種のご案内")
    _tap(client, codes_in(inbox(state, clinic, patient))[0])
    page = f"/c/{clinic.slug}/friends/{_friend(clinic, patient)}"

    login(client, gen_user("admin", clinic=clinic))
    html = client.get(page).get_data(as_text=True)
    section = html[html.index('data-testid="friend-clicked"') :]
    assert SITE.replace("&", "&amp;") in section and "予防接種のご案内" in section and "一斉配信" in section
    quiet_html = client.get(f"/c/{clinic.slug}/friends/{_friend(clinic, quiet)}").get_data(as_text=True)
    assert "クリックしたリンクの記録はまだありません" in quiet_html
    client.get("/auth/logout")

    login(client, gen_user("analyst", clinic=clinic))
    html = client.get(page).get_data(as_text=True)
    section = html[html.index('data-testid="friend-clicked"') :]
    assert SITE in section and f"/analytics/deliveries/{delivery_id}/" in section
    assert "予防接種のご案内" not in html and "インフルエンザ" not in html  # no title, no message text
    client.get("/auth/logout")

    login(client, gen_user("viewer", clinic=clinic))
    assert 'data-testid="friend-clicked"' not in client.get(page).get_data(as_text=True)


def test_a_friend_who_taps_on_two_days_counts_once_among_the_deliverys_clicking_friends(client, sandbox, state):
    """The per-day roll-up counts a friend on each day they tapped; the delivery report counts friends once."""
    from saas.analytics.jobs import catch_up

    clinic = connected_clinic(sandbox, "1750000103")
    first, second, third = add_friends(sandbox, clinic, 3)
    delivery_id = _send(clinic, WITH_LINK, "予防接種のご案内")
    first_code, second_code = (codes_in(inbox(state, clinic, user))[0] for user in (first, second))
    _tap(client, first_code)
    with tenant_scope(clinic.id):  # that first tap was yesterday
        (tap,) = db.session.scalars(sa.select(LinkClick)).all()
        tap.clicked_at -= timedelta(days=1)
        db.session.commit()
    _tap(client, first_code)  # and the same friend again today
    _tap(client, second_code)
    catch_up(3, clinic_ids=[clinic.id])
    with tenant_scope(clinic.id):
        per_day = db.session.scalars(sa.select(DeliveryClickDay).order_by(DeliveryClickDay.day)).all()
    assert [(r.clicks, r.friends) for r in per_day] == [(1, 1), (2, 2)]  # the first friend is in both days

    login(client, gen_user("analyst", clinic=clinic))
    html = client.get(f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/").get_data(as_text=True)
    assert total(html, "clickers") == "2"  # two friends, not three
    assert "クリック率 66.7%" in html  # of the three it reached
    assert chart(html, "funnel")["人数・件数"][3:5] == [2, 3]  # clicking friends, taps
    header, *rows = csv_rows(client.get(f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/report.csv").data)
    assert ["リンク", "クリックした友だち（リンク計測・1人1回）", "2", ""] in rows
