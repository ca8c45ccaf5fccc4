"""Analytics in a real browser: the clinic page draws its charts, the delivery report opens from the
deliveries list with LINE's opens and the link's clicks drawn, and its CSV downloads with the same numbers."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from playwright.sync_api import expect

from saas.analytics import jobs
from saas.quota.plans import set_clinic_plan
from saas.tenancy.scoping import tenant_scope
from tests.factories import PASSWORD, gen_user
from tests.insights.support import LINKED, request_ids, run_sync, send
from tests.insights.test_blocks import friends
from tests.webhooks.support import connect_clinic


@pytest.fixture(autouse=True)
def no_first_sync_delay(app):
    app.config["INSIGHT_FIRST_SYNC_MINUTES"] = 0
    yield
    app.config.pop("INSIGHT_FIRST_SYNC_MINUTES", None)


def csv_of(path) -> list[list[str]]:
    return list(csv.reader(io.StringIO(Path(path).read_text(encoding="utf-8-sig"))))


def sign_in(page, user) -> None:
    page.goto("/auth/login")
    page.get_by_label("メールアドレス").fill(user.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/c/**")


def test_the_delivery_report_opens_from_the_deliveries_list_draws_its_charts_and_downloads_its_csv(
    page, sandbox, live_server
):
    clinic, channel = connect_clinic(sandbox, live_server, name="みなと内科")
    with tenant_scope(clinic.id):
        set_clinic_plan(clinic.id, "standard", extra_allowed=True)
    patients = friends(sandbox, clinic, channel, 3)
    delivery_id = send(clinic, messages=LINKED, title="健診のご案内")
    (request_id,) = request_ids(clinic, delivery_id)
    for patient in patients[:2]:
        sandbox.open_message(channel, patient, request_id)
    run_sync()
    jobs.catch_up(7)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    sign_in(page, gen_user("sender", clinic=clinic))  # senders see the deliveries list and analytics
    page.get_by_role("link", name="分析").click()
    page.wait_for_url(f"**/c/{clinic.slug}/analytics/")
    page.wait_for_function("() => window.Chart && ['friends', 'follows'].every(n => Chart.getChart(n + '-chart'))")
    assert page.evaluate("() => Chart.getChart('friends-chart').data.datasets[0].data.at(-1)") == 3

    page.goto(f"/c/{clinic.slug}/deliveries")
    page.get_by_test_id("delivery-report-link").first.click()
    page.wait_for_url(f"**/c/{clinic.slug}/analytics/deliveries/{delivery_id}/")
    expect(page.get_by_role("heading", name="配信レポート：健診のご案内")).to_be_visible()
    page.wait_for_function(
        "() => window.Chart && ['funnel', 'links', 'conversions'].every(n => Chart.getChart(n + '-chart'))"
    )
    funnel = page.evaluate("() => Chart.getChart('funnel-chart').data.datasets[0].data")
    assert funnel[:2] == [3, 2]  # reached, opened (LINE)
    assert page.evaluate("() => Chart.getChart('links-chart').data.labels") == ["https://clinic.example/book"]

    with page.expect_download() as download_info:
        page.get_by_role("link", name="レポートをCSVでダウンロード").click()
    download = download_info.value
    assert download.suggested_filename == f"delivery-{delivery_id}-report.csv"
    rows = csv_of(download.path())
    assert rows[0] == ["区分", "項目", "値", "補足"]
    assert ["到達", "届いた友だち（LINEが受け付けた人数）", "3", ""] in rows
    assert next(r for r in rows if r[1] == "開封した人")[2] == "2"

    with page.expect_download() as chart_download:
        page.locator('[data-csv="funnel"]').click()
    funnel_rows = csv_of(chart_download.value.path())
    assert [r[1] for r in funnel_rows[1:3]] == ["3", "2"]
    page.screenshot(path="test-artifacts/delivery-report.png", full_page=True)
    assert errors == []
