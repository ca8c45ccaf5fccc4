"""The clinic dashboard in a real browser: both trend charts are drawn."""

from __future__ import annotations

from saas.common import utcnow
from saas.extensions import db
from saas.friends.models import Friend, Message
from saas.tenancy.scoping import tenant_scope
from tests.factories import PASSWORD, gen_clinic, gen_user


def test_dashboard_draws_the_friend_and_message_charts(page):
    clinic = gen_clinic(name="さくら内科")
    with tenant_scope(clinic.id):
        friend = Friend(line_user_id="U" + "1" * 32, attributes={}, followed_at=utcnow())
        db.session.add(friend)
        db.session.flush()
        db.session.add(Message(friend_id=friend.id, direction="in", kind="text", text="予約したいです"))
        db.session.commit()
    user = gen_user("sender", clinic=clinic)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto("/auth/login")
    page.get_by_label("メールアドレス").fill(user.email)
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url(f"**/c/{clinic.slug}/")
    assert page.get_by_role("heading", name="友だちの推移（過去30日）").is_visible()
    page.wait_for_function("() => window.Chart && Chart.getChart('friend-chart') && Chart.getChart('message-chart')")
    drawn = page.evaluate("() => Chart.getChart('friend-chart').data.datasets.map(d => d.data.at(-1))")
    assert drawn == [1, 0]
    page.screenshot(path="test-artifacts/clinic-dashboard.png", full_page=True)
    assert errors == []
