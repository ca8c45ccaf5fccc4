"""Timing: taps by the weekday × hour they happened (from the hourly roll-up), open rates by the
weekday × hour deliveries were sent (LINE's figures per delivery), and a best time to send only
when enough sends back it; the clinic page draws both heatmaps with CSVs, the composer gives the hint."""

from __future__ import annotations

import re

import pytest

from saas.analytics.rollup import JAPAN_OFFSET
from saas.common import utcnow
from saas.delivery import services as deliveries
from saas.extensions import db
from saas.insights.models import DeliveryInsight
from saas.tenancy.scoping import tenant_scope
from tests.analytics.support import csv_rows, japan_time, japan_today, run_jobs
from tests.analytics.test_click_attribution import WITH_LINK, _send, _tap
from tests.analytics.test_click_attribution import fast_retries as fast_retries
from tests.analytics.test_click_attribution import state as state
from tests.delivery.support import add_friends, connected_clinic
from tests.factories import gen_clinic, gen_user
from tests.helpers import login
from tests.links.test_links import codes_in, inbox


def _days_ago_on(weekday: int, weeks: int) -> int:
    """How many days ago the ``weeks``-th last Japan ``weekday`` (Monday 0) was, at least one."""
    back = (japan_today().weekday() - weekday) % 7 or 7
    return back + 7 * weeks


def _sent(
    clinic_id: int, weekday: int, hour: int, reached: int, opens: int | None, count: int, clicks: int | None = None
) -> None:
    with tenant_scope(clinic_id):
        for week in range(count):
            delivery = deliveries.create_delivery(messages=[{"type": "text", "text": "お知らせ"}], title="お知らせ")
            db.session.flush()
            sent_at = japan_time(_days_ago_on(weekday, week), hour, 5)
            db.session.add(
                DeliveryInsight(
                    delivery_id=delivery.id,
                    sent_at=sent_at,
                    reached=reached,
                    unique_impressions=opens,
                    unique_clicks=clicks,
                    kind="broadcast",
                )
            )
        db.session.commit()


def _page(client, clinic) -> str:
    return client.get(f"/c/{clinic.slug}/analytics/").get_data(as_text=True)


def _suggestion(html: str) -> str:
    start = html.index('data-testid="send-time-suggestion"')
    return html[start : html.index("</p>", start)]


def test_the_best_time_is_the_slot_with_the_highest_open_rate_among_those_sent_often_enough(client):
    clinic = gen_clinic()
    _sent(clinic.id, weekday=1, hour=12, reached=50, opens=30, count=3)  # Tuesday 12時台: 60 %
    _sent(clinic.id, weekday=4, hour=18, reached=50, opens=10, count=3)  # Friday 18時台: 20 %
    _sent(clinic.id, weekday=2, hour=9, reached=50, opens=50, count=2)  # 100 %, but only twice
    login(client, gen_user("analyst", clinic=clinic))
    html = _page(client, clinic)
    assert "火曜 12時台" in _suggestion(html) and "60.0%" in _suggestion(html)
    header, *rows = csv_rows(client.get(f"/c/{clinic.slug}/analytics/open_times.csv").data)
    assert header[0] == "曜日" and header[13] == "12時" and len(header) == 25
    by_day = {row[0]: row[1:] for row in rows}
    assert list(by_day) == ["月", "火", "水", "木", "金", "土", "日"]
    assert by_day["火"][12] == "60.0" and by_day["金"][18] == "20.0" and by_day["水"][9] == "100.0"
    assert by_day["月"][12] == "—"  # nothing sent then: no rate, not 0

    client.get("/auth/logout")
    login(client, gen_user("sender", clinic=clinic))
    composer = client.get(f"/c/{clinic.slug}/deliveries/new").get_data(as_text=True)
    assert "おすすめの配信時間: 火曜 12時台" in composer


def test_a_time_whose_messages_are_opened_and_tapped_beats_one_only_opened_and_the_page_says_how(client):
    clinic = gen_clinic()
    _sent(clinic.id, weekday=1, hour=12, reached=50, opens=30, count=3, clicks=0)  # 火 12時: 60 % + 0 %
    _sent(clinic.id, weekday=3, hour=19, reached=50, opens=27, count=3, clicks=10)  # 木 19時: 54 % + 20 %
    _sent(clinic.id, weekday=5, hour=10, reached=50, opens=35, count=3)  # 土 10時: 70 %, clicks withheld (0)
    login(client, gen_user("analyst", clinic=clinic))
    html = _page(client, clinic)
    assert "木曜 19時台" in _suggestion(html)
    assert "開封率 54.0%" in _suggestion(html) and "クリック率 20.0%" in _suggestion(html)
    assert "開封率とクリック率" in html.split('data-testid="send-time-rule"')[1].split("</p>")[0]


def test_equal_open_rates_are_decided_by_clicks_not_by_size(client):
    clinic = gen_clinic()
    _sent(clinic.id, weekday=0, hour=9, reached=100, opens=50, count=3, clicks=5)  # 50 % + 5 %, more recipients
    _sent(clinic.id, weekday=2, hour=20, reached=40, opens=20, count=3, clicks=4)  # 50 % + 10 %
    login(client, gen_user("analyst", clinic=clinic))
    assert "水曜 20時台" in _suggestion(_page(client, clinic))


@pytest.mark.parametrize(
    ("reached", "opens", "count", "why"),
    [
        (0, None, 0, "おすすめの時間は出せません"),  # nothing sent at all
        (20, 10, 3, "3回以上・のべ100人以上"),  # often enough, but to too few
        (50, None, 3, "LINEが開封数を公表していない"),  # LINE withheld every open count
    ],
)
def test_no_time_is_suggested_without_enough_data_and_the_page_says_why(client, reached, opens, count, why):
    clinic = gen_clinic()
    _sent(clinic.id, weekday=1, hour=12, reached=reached, opens=opens, count=count)
    login(client, gen_user("admin", clinic=clinic))
    html = _page(client, clinic)
    assert why in _suggestion(html) and "曜 " not in _suggestion(html)
    assert 'data-testid="send-time-hint"' not in client.get(f"/c/{clinic.slug}/deliveries/new").get_data(as_text=True)


def test_taps_fill_the_click_heatmap_at_the_japan_weekday_and_hour_they_happened(client, sandbox, state):
    clinic = connected_clinic(sandbox, "1750000201")
    first, second = add_friends(sandbox, clinic, 2)
    _send(clinic, WITH_LINK, "予防接種のご案内")
    before = utcnow() + JAPAN_OFFSET
    for user in (first, second):
        _tap(client, codes_in(inbox(state, clinic, user))[0])
    after = utcnow() + JAPAN_OFFSET
    run_jobs()
    other = gen_clinic()
    login(client, gen_user("analyst", clinic=clinic))
    assert 'data-testid="heatmap-click_times"' in _page(client, clinic)
    header, *rows = csv_rows(client.get(f"/c/{clinic.slug}/analytics/click_times.csv").data)
    cells = {(row[0], hour): int(value) for row in rows for hour, value in enumerate(row[1:]) if value != "0"}
    weekdays = ["月", "火", "水", "木", "金", "土", "日"]
    assert cells in (
        {(weekdays[before.weekday()], before.hour): 2},
        {(weekdays[after.weekday()], after.hour): 2},
    )
    login(client, gen_user("analyst", clinic=other))
    _, *elsewhere = csv_rows(client.get(f"/c/{other.slug}/analytics/click_times.csv").data)
    assert all(value == "0" for row in elsewhere for value in row[1:])
    assert client.get(f"/c/{clinic.slug}/analytics/click_times.csv").status_code in (403, 404)


def test_the_heatmaps_name_the_weekdays_in_the_portals_language(client):
    clinic = gen_clinic()
    login(client, gen_user("analyst", clinic=clinic))
    rows = {}
    for lang in ("ja", "en"):
        client.get(f"/language/{lang}")
        heatmap = _page(client, clinic).split('data-testid="heatmap-click_times"')[1].split("</table>")[0]
        rows[lang] = re.findall(r'<th scope="row">([^<]+)</th>', heatmap)
    assert rows["ja"] == ["月", "火", "水", "木", "金", "土", "日"]
    assert rows["en"] == ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
