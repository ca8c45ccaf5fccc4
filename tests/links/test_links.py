"""Clicks, always: sent URLs become short links per recipient, the redirect counts each tap."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from saas.delivery import services as deliveries
from saas.delivery.models import Delivery, DeliveryChunk
from saas.extensions import db
from saas.friends.models import Friend
from saas.links import services as links
from saas.links.models import LinkClick, TrackedLink
from saas.sandbox.control import SandboxError
from saas.tenancy.scoping import tenant_scope
from tests.analytics.support import csv_rows
from tests.delivery.support import add_friends, connected_clinic, drain
from tests.factories import gen_user
from tests.helpers import assert_rows_isolated, login

SHORT = re.compile(r"https?://[^/\s]+/l/([0-9A-Za-z]{16})")
PATIENT = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari Line/14.1.0"
SITE = "https://tsunagu-naika.example.jp/news?id=7&utm=line"
BOOK = "https://yoyaku.example.jp/clinic/7"
MESSAGES = [
    {"type": "text", "text": f"新しいお知らせです。\n{SITE}\n予約はこちら→{BOOK}です"},
    {
        "type": "template",
        "altText": "予約",
        "template": {"type": "buttons", "text": "ご予約", "actions": [{"type": "uri", "label": "予約", "uri": BOOK}]},
    },
]


def send(clinic, messages=MESSAGES, **fields) -> int:
    with tenant_scope(clinic.id):
        delivery = deliveries.create_delivery(messages=messages, **fields)
        deliveries.submit(delivery)
        return delivery.id


def inbox(sandbox_state, clinic, user_id) -> list[dict]:
    return [entry["message"] for entry in sandbox_state.channels[clinic.line_channel_id].patients[user_id].inbox]


def codes_in(messages) -> list[str]:
    return SHORT.findall(str(messages))


def friend_id(clinic, user_id: str) -> int:
    with tenant_scope(clinic.id):
        return db.session.scalar(sa.select(Friend.id).where(Friend.line_user_id == user_id))


def tap(client, code: str, agent: str = PATIENT, method: str = "GET"):
    return client.open(f"/l/{code}", method=method, headers={"User-Agent": agent})


def click_rows(clinic) -> list[LinkClick]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return db.session.scalars(sa.select(LinkClick).order_by(LinkClick.id)).all()


def stats(clinic, delivery_id: int) -> dict:
    with tenant_scope(clinic.id):
        return {link.url: link for link in links.clicks_by_link(delivery_id)}


def test_a_sent_url_reaches_the_patient_as_a_short_link_of_their_own_that_redirects_and_counts(
    sandbox, sandbox_state, client
):
    clinic = connected_clinic(sandbox, "1790000001")
    first, second = add_friends(sandbox, clinic, 2)
    delivery_id = send(clinic)
    drain()

    received = inbox(sandbox_state, clinic, first)
    text = received[0]["text"]
    assert SITE not in str(received) and BOOK not in str(received)
    assert text.startswith("新しいお知らせです。\n") and text.endswith("です"), "the Japanese around the URL stays"
    site_code, book_code, button_code = codes_in(received)
    assert book_code == button_code, "one code per link and recipient, wherever the link appears"
    assert not set(codes_in(received)) & set(codes_in(inbox(sandbox_state, clinic, second)))

    answer = tap(client, site_code)
    assert answer.status_code == 302 and answer.headers["Location"] == SITE
    assert "Set-Cookie" not in answer.headers, "no session for a patient's tap"
    (click,) = click_rows(clinic)
    assert (click.friend_id, click.delivery_id) == (friend_id(clinic, first), delivery_id)
    assert tap(client, book_code).headers["Location"] == BOOK
    with tenant_scope(clinic.id):
        assert db.session.get(Delivery, delivery_id).sent == 2


def test_a_forwarded_link_tapped_by_others_counts_once_per_recipient(sandbox, sandbox_state, client, app):
    clinic = connected_clinic(sandbox, "1790000002")
    first, second, third = add_friends(sandbox, clinic, 3)
    delivery_id = send(clinic)
    drain()
    code = codes_in(inbox(sandbox_state, clinic, first))[0]
    tap(client, code)
    tap(app.test_client(), code, agent="Mozilla/5.0 (Linux; Android 14) Chrome/120 Mobile Safari/537.36")  # forwarded
    tap(app.test_client(), code)
    tap(client, codes_in(inbox(sandbox_state, clinic, second))[0])

    site = stats(clinic, delivery_id)[SITE]
    assert (site.clicks, site.unique) == (4, 2)
    assert site.rate == pytest.approx(66.7)
    assert stats(clinic, delivery_id)[BOOK].clicks == 0, "every URL sent is listed, also without clicks"
    assert {c.friend_id for c in click_rows(clinic)} == {friend_id(clinic, first), friend_id(clinic, second)}


@pytest.mark.parametrize(
    ("agent", "method"),
    [
        ("facebookexternalhit/1.1;line-poker/1.0", "GET"),  # LINE's link preview
        ("Mozilla/5.0 (compatible; Linespider/1.1; +https://lin.ee/4dwXkTH)", "GET"),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "GET"),
        (PATIENT, "HEAD"),
        ("", "GET"),
    ],
)
def test_previews_prefetches_and_heads_are_redirected_but_not_counted(sandbox, sandbox_state, client, agent, method):
    clinic = connected_clinic(sandbox, "1790000003")
    (user,) = add_friends(sandbox, clinic, 1)
    send(clinic)
    drain()
    code = codes_in(inbox(sandbox_state, clinic, user))[0]
    answer = tap(client, code, agent=agent, method=method)
    assert answer.status_code == 302 and answer.headers["Location"] == SITE
    prefetch = client.get(f"/l/{code}", headers={"User-Agent": PATIENT, "Sec-Purpose": "prefetch"})
    assert prefetch.status_code == 302
    assert click_rows(clinic) == []


def test_unknown_or_malformed_codes_answer_a_japanese_404_and_redirect_nowhere(sandbox, sandbox_state, client):
    clinic = connected_clinic(sandbox, "1790000004")
    (user,) = add_friends(sandbox, clinic, 1)
    send(clinic)
    drain()
    real = codes_in(inbox(sandbox_state, clinic, user))[0]
    for path in (
        "/l/" + "A" * 16,
        "/l/" + real[:-1],
        "/l/" + real.lower() if real.lower() != real else "/l/" + real.upper(),
        "/l/https%3A%2F%2Fevil.example",
        "/l/" + real + "%0d%0aLocation:%20https://evil.example",
        "/l/" + real + "/https://evil.example",
    ):
        answer = client.get(path, headers={"User-Agent": PATIENT})
        assert answer.status_code == 404, path
        assert "Location" not in answer.headers
        if path.startswith("/l/" + "A"):
            assert "リンクが見つかりません" in answer.get_data(as_text=True)
    injected = client.get(
        f"/l/{real}?url=https://evil.example&next=https://evil.example", headers={"User-Agent": PATIENT}
    )
    assert injected.headers["Location"] == SITE, "nothing in the request chooses the target"
    assert len(click_rows(clinic)) == 1


def test_without_counting_per_friend_the_send_stays_a_multicast_with_one_code_per_link(sandbox, sandbox_state, client):
    clinic = connected_clinic(sandbox, "1790000005")
    first, second = add_friends(sandbox, clinic, 2)
    delivery_id = send(clinic, track_clicks_per_friend=False)
    drain()
    assert codes_in(inbox(sandbox_state, clinic, first)) == codes_in(inbox(sandbox_state, clinic, second))
    with tenant_scope(clinic.id):
        modes = db.session.scalars(sa.select(DeliveryChunk.mode).where(DeliveryChunk.delivery_id == delivery_id)).all()
    assert modes == ["multicast"]
    code = codes_in(inbox(sandbox_state, clinic, first))[0]
    tap(client, code)
    tap(client, code)
    site = stats(clinic, delivery_id)[SITE]
    assert (site.clicks, site.unique, site.rate) == (2, None, None)


def test_an_urgent_notice_keeps_its_multicast_and_counts_per_link(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1790000006")
    add_friends(sandbox, clinic, 3)
    delivery_id = send(clinic, messages=[{"type": "text", "text": f"本日休診です {SITE}"}], kind="urgent")
    drain()
    with tenant_scope(clinic.id):
        assert db.session.scalars(
            sa.select(DeliveryChunk.mode).where(DeliveryChunk.delivery_id == delivery_id)
        ).all() in (
            ["multicast"],
            [],
        )
        shared = db.session.scalars(sa.select(TrackedLink).where(TrackedLink.delivery_id == delivery_id)).all()
    assert len(shared) == 1 and shared[0].friend_id is None


def test_codes_for_a_large_send_are_written_in_multi_row_inserts(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1790000007")
    add_friends(sandbox, clinic, 1200)
    statements: list[tuple[str, int]] = []

    def note(conn, cursor, statement, parameters, context, executemany):
        if "INSERT INTO tracked_link" in statement:
            statements.append((statement, len(parameters) if executemany else 1))

    engine = db.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        delivery_id = send(clinic)
        drain()
    finally:
        event.remove(engine, "before_cursor_execute", note)
    with tenant_scope(clinic.id):
        count = db.session.scalar(
            sa.select(sa.func.count()).select_from(TrackedLink).where(TrackedLink.delivery_id == delivery_id)
        )
    assert count == 2400, "two links for each of 1,200 friends"
    assert len(statements) <= 6, f"{len(statements)} INSERT statements for 2,400 codes"


def test_one_clinics_codes_and_clicks_never_show_in_another_clinics_stats(sandbox, sandbox_state, client):
    clinic_a = connected_clinic(sandbox, "1790000008")
    clinic_b = connected_clinic(sandbox, "1790000009")
    (user_a,) = add_friends(sandbox, clinic_a, 1)
    (user_b,) = add_friends(sandbox, clinic_b, 1)
    delivery_a, delivery_b = send(clinic_a), send(clinic_b)
    drain()
    tap(client, codes_in(inbox(sandbox_state, clinic_a, user_a))[0])
    tap(client, codes_in(inbox(sandbox_state, clinic_b, user_b))[0])

    assert stats(clinic_b, delivery_a) == {}, "A's delivery id read in B's scope"
    assert stats(clinic_b, delivery_b)[SITE].clicks == 1 and stats(clinic_a, delivery_a)[SITE].clicks == 1
    with tenant_scope(clinic_a.id):
        link_a = db.session.scalars(sa.select(TrackedLink)).first()
        click_a = db.session.scalars(sa.select(LinkClick)).first()
    with tenant_scope(clinic_b.id):
        link_b = db.session.scalars(sa.select(TrackedLink)).first()
        click_b = db.session.scalars(sa.select(LinkClick)).first()
    assert_rows_isolated(TrackedLink, link_a, link_b)
    assert_rows_isolated(LinkClick, click_a, click_b)

    owner_b = gen_user("owner", clinic=clinic_b)
    login(client, owner_b)
    assert client.get(f"/c/{clinic_b.slug}/deliveries/{delivery_a}").status_code == 404
    assert client.get(f"/c/{clinic_b.slug}/analytics/deliveries/{delivery_a}/links.csv").status_code == 404


def test_a_delivery_shows_its_clicks_per_link_once_on_its_report_with_a_chart_and_the_same_numbers_as_csv(
    sandbox, sandbox_state, client
):
    clinic = connected_clinic(sandbox, "1790000010")
    users = add_friends(sandbox, clinic, 4)
    delivery_id = send(clinic)
    drain()
    for user in users[:3]:
        tap(client, codes_in(inbox(sandbox_state, clinic, user))[0])
    tap(client, codes_in(inbox(sandbox_state, clinic, users[0]))[0])
    login(client, gen_user("sender", clinic=clinic))

    report_url = f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/"
    detail = client.get(f"/c/{clinic.slug}/deliveries/{delivery_id}").get_data(as_text=True)
    assert f'href="{report_url}"' in detail
    assert "リンクごとのクリック" not in detail and "<tr data-url=" not in detail, "no second per-link table"
    report = client.get(report_url).get_data(as_text=True)
    assert 'id="links-chart"' in report and report.count("<tr data-url=") == 2, "one table, a row per link"
    row = re.search(r'<tr data-url="' + re.escape(SITE.replace("&", "&amp;")) + r'">(.*?)</tr>', report, re.S).group(1)
    assert re.search(r'data-col="clicks">4<', row) and re.search(r'data-col="unique">3<', row)
    assert "75.0%" in row
    rows = csv_rows(client.get(f"{report_url}links.csv").data)
    assert rows[1][:3] == [SITE, "4", "3"] and rows[2][:3] == [BOOK, "0", "0"]
    assert rows[0][3] == "クリック（LINE集計）" and rows[1][3] == rows[2][3] == "—", "LINE has not told its count"


def test_a_delivery_without_urls_sends_a_multicast_and_shows_no_click_section(sandbox, sandbox_state, client):
    clinic = connected_clinic(sandbox, "1790000011")
    add_friends(sandbox, clinic, 2)
    delivery_id = send(clinic, messages=[{"type": "text", "text": "明日は休診です（tel:03-0000-0000）"}])
    drain()
    with tenant_scope(clinic.id):
        modes = db.session.scalars(sa.select(DeliveryChunk.mode).where(DeliveryChunk.delivery_id == delivery_id)).all()
    assert modes == ["multicast"]
    login(client, gen_user("sender", clinic=clinic))
    report = client.get(f"/c/{clinic.slug}/analytics/deliveries/{delivery_id}/").get_data(as_text=True)
    assert "この配信にはリンクがありません。" in report and "<tr data-url=" not in report


def test_the_sandbox_counts_taps_on_urls_as_sent_so_lines_statistics_name_the_short_link(sandbox, sandbox_state):
    clinic = connected_clinic(sandbox, "1790000012")
    (user,) = add_friends(sandbox, clinic, 1)
    send(clinic)
    drain()
    entry = sandbox_state.channels[clinic.line_channel_id].patients[user].inbox[0]
    short = SHORT.search(entry["message"]["text"]).group(0)
    with pytest.raises(SandboxError, match="400"):
        sandbox.click(clinic.line_channel_id, user, entry["requestId"], SITE)
    assert sandbox.click(clinic.line_channel_id, user, entry["requestId"], short)["clicks"] == {short: 1}


def test_the_composer_offers_per_friend_counting_checked_and_an_unchecked_box_keeps_the_multicast(
    sandbox, sandbox_state, client
):
    clinic = connected_clinic(sandbox, "1790000013")
    add_friends(sandbox, clinic, 2)
    login(client, gen_user("sender", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/deliveries/new").get_data(as_text=True)
    box = re.search(r'<input type="checkbox" name="track_clicks"[^>]*>', page).group(0)
    assert "checked" in box and "友だちごとにクリックを計測" in page and "プッシュ送信" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    for track in (["0", "1"], ["0"]):
        answer = client.post(
            f"/c/{clinic.slug}/deliveries",
            data={"csrf_token": token, "text": f"お知らせ {SITE}", "audience": "all", "track_clicks": track},
        )
        assert answer.status_code == 302
    drain()
    db.session.expire_all()
    with tenant_scope(clinic.id):
        on, off = db.session.scalars(sa.select(Delivery).order_by(Delivery.id)).all()
        modes = {
            d.id: sorted(
                set(db.session.scalars(sa.select(DeliveryChunk.mode).where(DeliveryChunk.delivery_id == d.id)))
            )
            for d in (on, off)
        }
    assert (on.track_clicks_per_friend, off.track_clicks_per_friend) == (True, False)
    assert modes == {on.id: ["push"], off.id: ["multicast"]}
