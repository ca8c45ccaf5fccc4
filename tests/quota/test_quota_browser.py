"""The quota page in a real browser: the usage bar and the daily chart are drawn."""

from __future__ import annotations

from saas.quota.counter import reserve
from saas.quota.plans import load_plans, set_clinic_plan
from saas.tenancy.scoping import tenant_scope
from tests.factories import PASSWORD, gen_clinic, gen_user


def test_quota_page_draws_the_usage_bar_and_daily_chart(page):
    load_plans()
    clinic = gen_clinic(name="さくら内科")
    with tenant_scope(clinic.id):
        set_clinic_plan(clinic.id, "light")
        reserve(clinic.id, 4100)
    user = gen_user("sender", clinic=clinic)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/auth/login")
    page.get_by_label("メールアドレス").fill(user.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url(f"**/c/{clinic.slug}/")
    page.get_by_role("link", name="通数・プラン").click()
    page.wait_for_url("**/quota")
    assert page.get_by_role("progressbar").get_attribute("aria-valuenow") == "82.0"
    assert page.get_by_role("alert").inner_text().startswith("今月の無料メッセージ通数の80%を超えました")
    page.wait_for_function("() => window.Chart && Chart.getChart('daily-usage') !== undefined")
    page.screenshot(path="test-artifacts/quota-page.png", full_page=True)
    assert errors == []
