"""The clinic dashboard's charts and the portal home's per-clinic figures."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

import sqlalchemy as sa

from saas.common import utcnow
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.friends.models import Friend, FriendStatus, Message
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user
from tests.helpers import login

JST = timedelta(hours=9)


def _japan_today():
    return (utcnow() + JST).date()


def _japan_time(days_ago: int, hour: int = 0, minute: int = 30) -> datetime:
    """Naive UTC for a Japan wall-clock time ``days_ago`` days before today."""
    day = _japan_today() - timedelta(days=days_ago)
    return datetime(day.year, day.month, day.day, hour, minute) - JST


def _friends(clinic, *rows: dict) -> list[int]:
    with tenant_scope(clinic.id):
        friends = [Friend(line_user_id=f"U{clinic.id:04d}{n:028d}", attributes={}, **row) for n, row in enumerate(rows)]
        db.session.add_all(friends)
        db.session.commit()
        return [friend.id for friend in friends]


def _messages(clinic, friend_id: int, *rows: tuple[str, datetime]) -> None:
    with tenant_scope(clinic.id):
        for direction, at in rows:
            db.session.add(
                Message(friend_id=friend_id, direction=direction, kind="text", text="こんにちは", created_at=at)
            )
        db.session.commit()


def _chart(html: str, canvas_id: str) -> dict:
    tag = re.search(rf'<canvas id="{canvas_id}"[^>]*>', html).group(0)
    labels = json.loads(re.search(r"data-labels='([^']*)'", tag).group(1))
    series = json.loads(re.search(r"data-series='([^']*)'", tag).group(1))
    return {"labels": labels, **{s["label"]: s["data"] for s in series}}


def _total(html: str, name: str) -> str:
    return re.search(rf'data-total="{name}">([^<]*)<', html).group(1)


def _dashboard(client, clinic, role: str = "viewer") -> str:
    login(client, gen_user(role, clinic=clinic))
    response = client.get(f"/c/{clinic.slug}/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def test_dashboard_charts_daily_follows_and_blocks_by_japan_day(client):
    clinic, other = gen_clinic(name="さくら内科"), gen_clinic(name="他院")
    _friends(
        clinic,
        {"followed_at": _japan_time(3)},  # 00:30 in Japan: the previous day in UTC
        {"followed_at": _japan_time(3, hour=23)},
        {"followed_at": _japan_time(0, hour=0, minute=5)},
        {"followed_at": _japan_time(40)},  # outside the chart, still a friend
        {"followed_at": _japan_time(10), "status": FriendStatus.BLOCKED, "blocked_at": _japan_time(2)},
    )
    _friends(
        other, *[{"followed_at": _japan_time(3)} for _ in range(4)], {"blocked_at": _japan_time(2), "status": "blocked"}
    )

    html = _dashboard(client, clinic)

    chart = _chart(html, "friend-chart")
    assert len(chart["labels"]) == 30
    assert chart["labels"][-1] == _japan_today().strftime("%m/%d")
    assert chart["labels"][-4] == (_japan_today() - timedelta(days=3)).strftime("%m/%d")
    follows, blocks = chart["友だち追加"], chart["ブロック"]
    assert follows[-4] == 2 and follows[-1] == 1 and follows[-11] == 1 and sum(follows) == 4
    assert blocks[-3] == 1 and sum(blocks) == 1
    assert _total(html, "following") == "4"
    assert _total(html, "blocked") == "1"
    assert _total(html, "block-rate") == "20.0%"


def test_dashboard_charts_messages_received_and_sent(client):
    clinic, other = gen_clinic(), gen_clinic(name="他院")
    (friend,) = _friends(clinic, {"followed_at": _japan_time(5)})
    (stranger,) = _friends(other, {"followed_at": _japan_time(5)})
    _messages(clinic, friend, ("in", _japan_time(1, 9)), ("in", _japan_time(1, 10)), ("out", _japan_time(1, 11)))
    _messages(clinic, friend, ("out", _japan_time(0, 8)), ("in", _japan_time(45)))
    _messages(other, stranger, ("in", _japan_time(1, 9)), ("out", _japan_time(0, 9)))

    html = _dashboard(client, clinic)

    chart = _chart(html, "message-chart")
    assert chart["受信"][-2] == 2 and sum(chart["受信"]) == 2
    assert chart["送信"][-2] == 1 and chart["送信"][-1] == 1 and sum(chart["送信"]) == 2
    assert _total(html, "received") == "2" and _total(html, "sent") == "2"


def test_senders_see_the_latest_five_deliveries_with_links(client):
    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        deliveries = [
            Delivery(title=f"お知らせ{n}", kind="broadcast", status="done", targeted=10, sent=9) for n in range(7)
        ]
        db.session.add_all([*deliveries, Delivery(title="下書き", status="draft")])
        db.session.commit()
        ids = [delivery.id for delivery in deliveries]

    html = _dashboard(client, clinic, role="sender")

    section = html[html.index('id="latest-deliveries"') :]
    for delivery_id in ids[2:]:
        assert f"/c/{clinic.slug}/deliveries/{delivery_id}" in section
    assert f'/deliveries/{ids[1]}"' not in section and "下書き" not in section
    assert "お知らせ6" in section and "完了" in section and "9 / 10" in section


def test_viewers_do_not_see_deliveries(client):
    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        db.session.add(Delivery(title="お知らせ", status="done"))
        db.session.commit()

    html = _dashboard(client, clinic, role="viewer")

    assert 'id="latest-deliveries"' not in html and "お知らせ" not in html


def _home(client, user) -> str:
    login(client, user)
    response = client.get("/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _tile_figures(html: str, clinic) -> dict[str, str]:
    start = html.index(f'data-clinic="{clinic.slug}"')
    tile = html[start : html.index("</a>", start)]
    return dict(re.findall(r"<dt>([^<]*)</dt><dd>([^<]*)</dd>", tile))


def test_organization_sees_each_branches_friends_and_new_friends_side_by_side(client):
    corporation = gen_organization(gen_agency(), name="医療法人さくら会")
    shibuya, shinjuku = gen_clinic(corporation, name="渋谷院"), gen_clinic(corporation, name="新宿院")
    _friends(shibuya, {"followed_at": utcnow()}, {"followed_at": utcnow()}, {"followed_at": _japan_time(40)})
    _friends(shinjuku, {"followed_at": utcnow()}, {"followed_at": _japan_time(40), "status": "blocked"})

    html = _home(client, gen_user("admin", organization=corporation))

    assert _tile_figures(html, shibuya)["友だち（フォロー中）"] == "3"
    assert _tile_figures(html, shibuya)["今月の新しい友だち"] == "2"
    assert _tile_figures(html, shinjuku)["友だち（フォロー中）"] == "1"
    assert _tile_figures(html, shinjuku)["今月の新しい友だち"] == "1"


def _queries_for_home(client) -> int:
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert client.get("/").status_code == 200
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)
    return len(statements)


def test_portal_home_queries_do_not_grow_with_the_number_of_clinics(client):
    corporation = gen_organization(gen_agency())
    for n in range(2):
        _friends(gen_clinic(corporation, name=f"{n}院"), {"followed_at": utcnow()})
    login(client, gen_user("admin", organization=corporation))
    few = _queries_for_home(client)
    for n in range(2, 6):
        _friends(gen_clinic(corporation, name=f"{n}院"), {"followed_at": utcnow()})

    assert _queries_for_home(client) == few
