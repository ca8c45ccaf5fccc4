"""The analytics page in a real browser: every chart is drawn with the roll-ups' numbers."""

from __future__ import annotations

from playwright.sync_api import expect

from saas.analytics import jobs
from tests.analytics.support import add_friends, block, japan_time
from tests.factories import PASSWORD, gen_clinic, gen_user


def test_the_analytics_page_draws_its_charts(page):
    clinic = gen_clinic(name="さくら内科")
    ids = add_friends(clinic.id, {"followed_at": japan_time(2)}, {"followed_at": japan_time(0, 9)})
    block(clinic.id, ids[0], japan_time(1))
    jobs.catch_up(7)
    user = gen_user("analyst", clinic=clinic)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/auth/login")
    page.get_by_label("メールアドレス").fill(user.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url(f"**/c/{clinic.slug}/")
    page.get_by_role("link", name="分析").click()
    page.wait_for_url(f"**/c/{clinic.slug}/analytics/")
    expect(page.get_by_role("heading", name="友だち追加・ブロック")).to_be_visible()
    page.wait_for_function(
        "() => window.Chart && ['friends', 'follows', 'sending', 'activity'].every(n => Chart.getChart(n + '-chart'))"
    )
    drawn = page.evaluate("() => Chart.getChart('follows-chart').data.datasets.map(d => d.data.at(-1))")
    assert drawn[:2] == [1, 0]
    assert page.evaluate("() => Chart.getChart('friends-chart').data.datasets[0].data.at(-1)") == 1
    page.get_by_role("link", name="過去7日").click()
    page.wait_for_url("**/analytics/?days=7")
    page.wait_for_function("() => window.Chart && Chart.getChart('follows-chart')")
    assert page.evaluate("() => Chart.getChart('follows-chart').data.labels.length") == 7
    page.screenshot(path="test-artifacts/clinic-analytics.png", full_page=True)
    assert errors == []
