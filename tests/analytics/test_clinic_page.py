"""The clinic analytics page 「分析」: figures from the roll-ups the jobs built, each chart's CSV
says the same numbers, and only roles with analytics.view reach it."""

from __future__ import annotations

from saas.extensions import db
from saas.friends.models import Message
from saas.sources.models import InflowSource
from saas.tenancy.scoping import tenant_scope
from tests.analytics.support import add_booking, add_friends, block, chart, csv_rows, japan_time, run_jobs, total
from tests.factories import gen_clinic, gen_user
from tests.helpers import login


def _clinic_with_history():
    clinic = gen_clinic(name="さくら内科")
    with tenant_scope(clinic.id):
        poster = InflowSource(name="待合室ポスター")
        db.session.add(poster)
        db.session.commit()
        poster_id = poster.id
    ids = add_friends(
        clinic.id,
        {"followed_at": japan_time(40)},
        {"followed_at": japan_time(5), "inflow_source_id": poster_id},
        {"followed_at": japan_time(5, 18), "inflow_source_id": poster_id},
        {"followed_at": japan_time(2)},
    )
    block(clinic.id, ids[2], japan_time(1))
    add_booking(clinic.id, ids[1], japan_time(1, 12))
    with tenant_scope(clinic.id):
        db.session.add(Message(friend_id=ids[0], direction="in", kind="text", text="胃が痛くて眠れません"))
        db.session.commit()
    from saas.analytics import jobs

    jobs.catch_up(60)  # the history (as `flask analytics backfill` builds it)
    run_jobs()
    return clinic


def _page(client, clinic, role="analyst", query=""):
    login(client, gen_user(role, clinic=clinic))
    return client.get(f"/c/{clinic.slug}/analytics/{query}")


def test_the_page_shows_growth_blocks_and_sources_from_the_roll_ups(client):
    clinic = _clinic_with_history()
    response = _page(client, clinic)
    assert response.status_code == 200
    html = response.get_data(as_text=True)

    assert total(html, "friends") == "3"
    assert total(html, "follows") == "3" and total(html, "blocks") == "1"
    assert total(html, "growth") == "+2"
    assert total(html, "block-rate") == "25.0%"  # 1 block / (1 friend at the start + 3 follows)
    follows = chart(html, "follows")
    assert len(follows["labels"]) == 30
    assert follows["友だち追加"][-6] == 2 and follows["友だち追加"][-3] == 1 and follows["ブロック"][-2] == 1
    assert chart(html, "friends")["友だち数"][-1] == 3
    sources = chart(html, "sources")
    assert sources["labels"][0] == "待合室ポスター"
    assert sources["友だち追加"][0] == 2 and sources["予約"][0] == 1
    assert "胃が痛くて眠れません" not in html  # the analyst never sees patients' words


def test_every_chart_csv_has_the_numbers_the_chart_draws(client):
    clinic = _clinic_with_history()
    html = _page(client, clinic, query="?days=7").get_data(as_text=True)
    for name in ("friends", "follows", "sending", "activity", "sources"):
        drawn = chart(html, name)
        response = client.get(f"/c/{clinic.slug}/analytics/{name}.csv?days=7")
        assert response.status_code == 200 and response.mimetype == "text/csv"
        header, *rows = csv_rows(response.data)
        assert [row[0] for row in rows] == drawn["labels"]
        for column, label in enumerate(header[1:], start=1):
            assert [row[column] for row in rows] == ["" if v is None else str(v) for v in drawn[label]]


def test_the_period_selector_changes_the_days_and_ignores_nonsense(client):
    clinic = _clinic_with_history()
    login(client, gen_user("sender", clinic=clinic))
    assert (
        len(chart(client.get(f"/c/{clinic.slug}/analytics/?days=90").get_data(as_text=True), "friends")["labels"]) == 90
    )
    html = client.get(f"/c/{clinic.slug}/analytics/?days=13%3Cscript%3E").get_data(as_text=True)
    assert len(chart(html, "friends")["labels"]) == 30
    assert total(html, "follows") == "3"


def test_viewers_and_responders_get_403_and_no_menu_entry(client):
    clinic = _clinic_with_history()
    for role in ("viewer", "responder"):
        login(client, gen_user(role, clinic=clinic))
        assert client.get(f"/c/{clinic.slug}/analytics/").status_code == 403
        assert client.get(f"/c/{clinic.slug}/analytics/friends.csv").status_code == 403
        assert f"/c/{clinic.slug}/analytics/" not in client.get(f"/c/{clinic.slug}/").get_data(as_text=True)
        client.get("/auth/logout")
    login(client, gen_user("analyst", clinic=clinic))
    assert f"/c/{clinic.slug}/analytics/" in client.get(f"/c/{clinic.slug}/").get_data(as_text=True)


def test_another_clinics_analytics_is_a_404_and_its_numbers_never_show(client):
    clinic, other = _clinic_with_history(), gen_clinic(name="他院")
    add_friends(other.id, *[{"followed_at": japan_time(1)} for _ in range(7)])
    run_jobs()
    login(client, gen_user("analyst", clinic=clinic))
    assert client.get(f"/c/{other.slug}/analytics/").status_code == 404
    assert client.get(f"/c/{other.slug}/analytics/follows.csv").status_code == 404
    html = client.get(f"/c/{clinic.slug}/analytics/").get_data(as_text=True)
    assert total(html, "follows") == "3"
    assert client.get(f"/c/{clinic.slug}/analytics/nothing.csv").status_code == 404
