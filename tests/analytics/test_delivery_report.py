"""The per-delivery report through the sandbox: a multicast with a link, patients opening and
tapping it in LINE, a block, the insight sync job, then the report page and its CSV. Opens come
from LINE's per-request statistics when LINE has them and from the delivery's own aggregation
unit (dlv_<id>) when it has not (LINE documents per-request figures for broadcast/narrowcast
only); withheld counts show as "—" with the reason, never 0."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from saas.analytics.models import Conversion
from saas.common import utcnow
from saas.extensions import db
from saas.friends.models import Friend
from saas.insights.models import InsightRequest, InsightUnit, RequestStatus
from saas.insights.services import delivery_stats
from saas.quota.plans import set_clinic_plan
from saas.tenancy.scoping import tenant_scope
from tests.analytics.support import chart, csv_rows, total
from tests.factories import gen_clinic, gen_organization, gen_user
from tests.helpers import login
from tests.insights.support import LINKED, request_ids, run_sync, send
from tests.insights.test_blocks import block, friends
from tests.webhooks.support import connect_clinic

URL = "https://clinic.example/book"
SHORT = re.compile(r"/l/([0-9A-Za-z]{16})")
PATIENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari Line/14.1.0"


@pytest.fixture(autouse=True)
def no_first_sync_delay(app):
    app.config["INSIGHT_FIRST_SYNC_MINUTES"] = 0
    yield
    app.config.pop("INSIGHT_FIRST_SYNC_MINUTES", None)


@pytest.fixture
def clinic_and_channel(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    with tenant_scope(clinic.id):
        set_clinic_plan(clinic.id, "standard", extra_allowed=True)
    return clinic, channel


def sent_uri(sandbox, channel: str, patient: str) -> str:
    return sandbox.inbox(channel, patient)[-1]["message"]["template"]["actions"][0]["uri"]


def tap_in_line(sandbox, client, channel: str, patient: str, request_id: str) -> None:
    """The patient taps the button: LINE counts the click, and the short link redirects (we count it)."""
    uri = sent_uri(sandbox, channel, patient)
    sandbox.click(channel, patient, request_id, uri)
    assert client.get(f"/l/{SHORT.search(uri).group(1)}", headers={"User-Agent": PATIENT}).status_code in (302, 303)


def report_page(client, clinic, delivery_id: int) -> str:
    response = client.get(f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def link_cell(html: str, column: str) -> str:
    row = re.search(rf'<tr data-url="{re.escape(URL)}">(.*?)</tr>', html, re.S).group(1)
    return re.search(rf'data-col="{column}">(.*?)</td>', row, re.S).group(1)


def source(html: str) -> str:
    return re.search(r'data-source="([a-z_]+)"', html).group(1)


def test_opens_clicks_blocks_and_conversions_of_a_multicast_reach_the_report_and_its_csv(
    sandbox, clinic_and_channel, client
):
    clinic, channel = clinic_and_channel
    patients = friends(sandbox, clinic, channel, 4)
    delivery_id = send(clinic, messages=LINKED)
    (request_id,) = request_ids(clinic, delivery_id)
    for patient in patients[:3]:
        sandbox.open_message(channel, patient, request_id)
    tap_in_line(sandbox, client, channel, patients[0], request_id)
    block(sandbox, channel, patients[3])
    with tenant_scope(clinic.id):
        friend_id = db.session.scalar(sa.select(Friend.id).where(Friend.line_user_id == patients[0]))
        # a booking the click attribution credited to this delivery (the column is read as stored)
        db.session.add(
            Conversion(
                kind="booking", ref_id=1, friend_id=friend_id, occurred_at=utcnow(), window_days=7,
                clicked_delivery_id=delivery_id, received_delivery_id=delivery_id,
            )
        )  # fmt: skip
        db.session.commit()

    run_sync()

    login(client, gen_user("analyst", clinic=clinic))
    html = report_page(client, clinic, delivery_id)
    assert source(html) == "request"
    assert total(html, "reach") == "4" and total(html, "unique-opens") == "3" and total(html, "unique-clicks") == "1"
    assert total(html, "blocks-24h") == "1" and total(html, "blocks-72h") == "1"
    assert link_cell(html, "clicks") == "1" and link_cell(html, "line-clicks") == "1"
    assert chart(html, "funnel")["人数・件数"] == [4, 3, 1, None, 1, 1, 1]  # shared links: no per-friend count
    assert chart(html, "links")["labels"] == [URL]
    assert chart(html, "conversions")["最後にクリックした配信"] == [1, 0, 0, 0]
    assert chart(html, "conversions")["最後に受け取った配信"] == [1, 0, 0, 0]

    header, *rows = csv_rows(client.get(f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/report.csv").data)
    values = {(r[0], r[1], r[3]) if r[0] in ("リンク", "コンバージョン") else (r[0], r[1]): r[2] for r in rows}
    assert values[("到達", "届いた友だち（LINEが受け付けた人数）")] == "4"
    assert values[("LINEの統計", "開封した人")] == "3"
    assert values[("ブロック", "24時間以内")] == "1"
    assert values[("リンク", URL, "クリック（リンク計測）")] == "1"
    assert values[("コンバージョン", "予約", "最後にクリックした配信")] == "1"
    funnel = csv_rows(client.get(f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/funnel.csv").data)
    assert [row[1] for row in funnel[1:]] == ["4", "3", "1", "—", "1", "1", "1"]
    assert client.get(f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/nothing.csv").status_code == 404


def test_without_per_request_statistics_the_report_shows_the_deliverys_own_unit(sandbox, clinic_and_channel, client):
    clinic, channel = clinic_and_channel
    sandbox.configure(channel, requestStatistics="line")  # multicast requests: no per-request figures, as on LINE
    patients = friends(sandbox, clinic, channel, 3)
    delivery_id = send(clinic, messages=LINKED)
    (request_id,) = request_ids(clinic, delivery_id)
    for patient in patients[:2]:
        sandbox.open_message(channel, patient, request_id)
    tap_in_line(sandbox, client, channel, patients[1], request_id)

    run_sync()

    with tenant_scope(clinic.id):
        request = db.session.scalar(sa.select(InsightRequest).where(InsightRequest.delivery_id == delivery_id))
        assert request.status == RequestStatus.PENDING and request.attempts == 1  # LINE answered 404
        unit = db.session.scalar(sa.select(InsightUnit).where(InsightUnit.delivery_id == delivery_id))
        assert unit.name == f"dlv_{delivery_id}" and unit.unique_impressions == 2
        stats = delivery_stats(delivery_id)  # the delivery page, the lists and the timing chart read this row
        assert stats.synced and stats.unique_opens == 2 and stats.unique_clicks == 1
    login(client, gen_user("analyst", clinic=clinic))
    html = report_page(client, clinic, delivery_id)
    assert source(html) == "unit" and f"dlv_{delivery_id}" in html
    assert total(html, "unique-opens") == "2" and total(html, "unique-clicks") == "1"
    assert link_cell(html, "clicks") == "1" and link_cell(html, "line-clicks") == "1"


def test_counts_below_lines_privacy_threshold_show_a_dash_with_the_reason_never_zero(
    sandbox, clinic_and_channel, client
):
    clinic, channel = clinic_and_channel
    sandbox.configure(channel, privacyThreshold=20)
    patients = friends(sandbox, clinic, channel, 3)
    delivery_id = send(clinic, messages=LINKED)
    (request_id,) = request_ids(clinic, delivery_id)
    sandbox.open_message(channel, patients[0], request_id)
    tap_in_line(sandbox, client, channel, patients[0], request_id)

    run_sync()

    login(client, gen_user("analyst", clinic=clinic))
    html = report_page(client, clinic, delivery_id)
    opens = re.search(r'data-total="unique-opens">(.*?)</p>', html, re.S).group(1)
    assert 'data-state="withheld"' in opens and "—" in opens and "20人未満" in opens and ">0<" not in opens
    assert 'data-state="withheld"' in link_cell(html, "line-clicks")
    assert link_cell(html, "clicks") == "1"  # our own count of the short link is not LINE's to withhold
    assert chart(html, "funnel")["人数・件数"][1:3] == [None, None]  # empty on the chart, not 0
    rows = csv_rows(client.get(f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/report.csv").data)
    opened = next(r for r in rows if r[1] == "開封した人")
    assert opened[2] == "—"
    assert any("20人未満" in r[3] for r in rows)


def test_before_any_sync_the_report_says_lines_figures_are_not_in_yet(sandbox, clinic_and_channel, client, app):
    clinic, channel = clinic_and_channel
    friends(sandbox, clinic, channel, 2)
    delivery_id = send(clinic, messages=LINKED)
    login(client, gen_user("analyst", clinic=clinic))
    html = report_page(client, clinic, delivery_id)
    assert source(html) == "none"
    assert 'data-state="pending"' in re.search(r'data-total="unique-opens">(.*?)</p>', html, re.S).group(1)


def test_another_clinics_delivery_report_and_csvs_are_404_and_viewers_403(sandbox, clinic_and_channel, client):
    clinic, channel = clinic_and_channel
    friends(sandbox, clinic, channel, 1)
    delivery_id = send(clinic, messages=LINKED)
    other = gen_clinic()
    login(client, gen_user("analyst", clinic=other))
    for tail in ("", "report.csv", "funnel.csv", "conversions.csv"):
        assert client.get(f"/c/{other.slug}/analytics/deliveries/{delivery_id}/{tail}").status_code == 404, tail
    client.get("/auth/logout")
    login(client, gen_user("viewer", clinic=clinic))
    assert client.get(f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/report.csv").status_code == 403


def test_a_segment_send_without_per_request_statistics_says_line_counts_it_with_its_segment(
    sandbox, clinic_and_channel, client
):
    clinic, channel = clinic_and_channel
    sandbox.configure(channel, requestStatistics="line")
    patients = friends(sandbox, clinic, channel, 2)
    delivery_id = send(clinic, messages=LINKED, kind="segment", segment={"followed_from": "2020-01-01"})
    (request_id,) = request_ids(clinic, delivery_id)
    sandbox.open_message(channel, patients[0], request_id)

    run_sync()

    login(client, gen_user("analyst", clinic=clinic))
    html = report_page(client, clinic, delivery_id)
    assert source(html) == "shared_unit" and "seg_" in html
    opens = re.search(r'data-total="unique-opens">(.*?)</p>', html, re.S).group(1)
    assert "—" in opens and ">0<" not in opens


def test_the_organization_page_compares_the_branches_open_and_click_rates_from_lines_statistics(
    sandbox, clinic_and_channel, client
):
    clinic, channel = clinic_and_channel
    hq = gen_organization(name="医療法人みどり会")
    quiet = gen_clinic(hq, name="みどり西")
    clinic.organization_id = hq.id
    db.session.commit()
    patients = friends(sandbox, clinic, channel, 4)
    delivery_id = send(clinic, messages=LINKED)
    (request_id,) = request_ids(clinic, delivery_id)
    for patient in patients[:2]:
        sandbox.open_message(channel, patient, request_id)
    tap_in_line(sandbox, client, channel, patients[0], request_id)
    run_sync()

    login(client, gen_user("analyst", organization=hq))
    page = client.get(f"/analytics/organizations/{hq.slug}/").get_data(as_text=True)
    assert branch_cell(page, clinic, "open_rate") == "50.0%" and branch_cell(page, clinic, "click_rate") == "25.0%"
    assert branch_cell(page, quiet, "open_rate") == "—", "no sends: no rate, never 0%"
    assert chart(page, "opens")["開封率（%）"] == [50.0, None]
    header, *rows = csv_rows(client.get(f"/analytics/organizations/{hq.slug}/opens.csv").data)
    assert header == ["クリニック", "開封率（%）", "クリック率（%）"]
    assert rows == [[clinic.name, "50.0", "25.0"], [quiet.name, "—", "—"]], "no sends: 「—」 as on the page"


def branch_cell(html: str, clinic, column: str) -> str:
    row = re.search(rf'<tr data-clinic="{clinic.slug}">(.*?)</tr>', html, re.S).group(1)
    return re.search(rf'data-col="{column}">(.*?)</td>', row, re.S).group(1)
