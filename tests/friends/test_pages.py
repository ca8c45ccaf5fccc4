"""The friends pages: search and filters, the detail with tags and conversation, tenant isolation."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from saas.common import utcnow
from saas.extensions import db
from saas.friends.models import Friend, FriendTag, Message, Tag
from saas.tenancy.scoping import tenant_scope
from saas.webhooks.models import WebhookEvent
from tests.conftest import csrf_token
from tests.factories import gen_clinic, gen_user
from tests.helpers import assert_rows_isolated, login


def _detached(row):
    """Load the committed row and detach it, so tests can read it outside the tenant scope."""
    db.session.refresh(row)
    db.session.expunge(row)
    return row


def _friend(clinic, name: str, **fields) -> Friend:
    with tenant_scope(clinic.id):
        friend = Friend(
            line_user_id=f"U{abs(hash((clinic.id, name))):032x}"[:33],
            display_name=name,
            followed_at=fields.pop("followed_at", utcnow()),
            attributes={},
            **fields,
        )
        db.session.add(friend)
        db.session.commit()
        return _detached(friend)


def _tag(clinic, name: str, *friends) -> Tag:
    with tenant_scope(clinic.id):
        tag = Tag(name=name, color="blue")
        db.session.add(tag)
        db.session.flush()
        for friend in friends:
            db.session.add(FriendTag(friend_id=friend.id, tag_id=tag.id))
        db.session.commit()
        return _detached(tag)


def _message(clinic, friend, direction: str, text: str) -> Message:
    with tenant_scope(clinic.id):
        message = Message(friend_id=friend.id, direction=direction, kind="text", text=text, payload={})
        db.session.add(message)
        db.session.commit()
        return _detached(message)


@pytest.fixture
def clinic():
    return gen_clinic(name="つなぐ小児科")


def _signed_in(client, clinic, role: str = "responder"):
    login(client, gen_user(role, clinic=clinic))
    return client


def _names(page: str, *candidates: str) -> set[str]:
    return {name for name in candidates if name in page}


def test_the_list_searches_by_name_and_filters_by_status_tag_and_follow_date(client, clinic):
    hanako = _friend(clinic, "山田 花子", followed_at=datetime(2025, 4, 1, 3))
    ichiro = _friend(clinic, "山田 一郎", status="blocked", followed_at=datetime(2025, 5, 10, 3))
    _friend(clinic, "佐藤 健", followed_at=datetime(2025, 6, 20, 3))
    _tag(clinic, "初診", hanako)
    tag_id = _tag(clinic, "小児", ichiro).id
    _signed_in(client, clinic, "viewer")
    base = f"/c/{clinic.slug}/friends"
    everyone = ("山田 花子", "山田 一郎", "佐藤 健")

    assert _names(client.get(base).get_data(as_text=True), *everyone) == set(everyone)
    assert _names(client.get(base + "?q=山田").get_data(as_text=True), *everyone) == {"山田 花子", "山田 一郎"}
    assert _names(client.get(base + "?status=blocked").get_data(as_text=True), *everyone) == {"山田 一郎"}
    assert _names(client.get(base + f"?tag={tag_id}").get_data(as_text=True), *everyone) == {"山田 一郎"}
    dated = client.get(base + "?from=2025-05-01&to=2025-06-20").get_data(as_text=True)
    assert _names(dated, *everyone) == {"山田 一郎", "佐藤 健"}
    assert "初診" in client.get(base).get_data(as_text=True)  # tags shown as chips


def test_the_list_is_paginated(client, clinic):
    for i in range(55):
        _friend(clinic, f"患者{i:02d}")
    _signed_in(client, clinic, "viewer")
    first = client.get(f"/c/{clinic.slug}/friends").get_data(as_text=True)
    next_url = first.split('data-testid="friends-next" href="')[1].split('"')[0].replace("&amp;", "&")
    second = client.get(next_url).get_data(as_text=True)
    assert "55 人" in first and first.count('class="friend-cell"') == 50
    assert second.count('class="friend-cell"') == 5 and 'data-testid="friends-next"' not in second


def test_the_detail_shows_the_profile_and_the_conversation(client, clinic):
    friend = _friend(clinic, "高橋 美咲")
    _message(clinic, friend, "in", "予約の変更をお願いします")
    _message(clinic, friend, "out", "承知しました")
    page = _signed_in(client, clinic).get(f"/c/{clinic.slug}/friends/{friend.id}").get_data(as_text=True)
    assert "高橋 美咲" in page and "フォロー中" in page
    assert page.index("予約の変更をお願いします") < page.index("承知しました")
    assert 'class="bubble-row from-clinic"' in page and 'class="bubble-row from-friend"' in page
    # the bubble keeps line breaks (pre-wrap): it holds the text alone, no indent or blank lines around it
    assert '<div class="bubble kind-text">予約の変更をお願いします</div>' in page


def test_staff_who_may_not_read_chats_see_the_profile_but_not_the_messages(client, clinic):
    friend = _friend(clinic, "秘密 太郎")
    _message(clinic, friend, "in", "持病について相談です")
    page = _signed_in(client, clinic, "viewer").get(f"/c/{clinic.slug}/friends/{friend.id}").get_data(as_text=True)
    assert "秘密 太郎" in page and "持病について相談です" not in page


def test_tags_are_added_and_removed_from_the_detail_page(client, clinic):
    friend = _friend(clinic, "伊藤 健")
    existing = _tag(clinic, "リハビリ")
    _signed_in(client, clinic)
    url = f"/c/{clinic.slug}/friends/{friend.id}"
    client.post(url + "/tags", data={"name": "初診", "color": "orange", "csrf_token": csrf_token(client)})
    client.post(url + "/tags", data={"tag_id": existing.id, "csrf_token": csrf_token(client)})
    page = client.get(url).get_data(as_text=True)
    assert 'tag-chip tag-orange">初診' in page and 'tag-chip tag-blue">リハビリ' in page
    client.post(url + f"/tags/{existing.id}/remove", data={"csrf_token": csrf_token(client)})
    with tenant_scope(clinic.id):
        db.session.expire_all()
        assert [t.name for t in db.session.get(Friend, friend.id).tags] == ["初診"]


def test_tag_changes_need_the_edit_permission_and_a_csrf_token(client, clinic):
    friend = _friend(clinic, "閲覧 専用")
    _signed_in(client, clinic, "viewer")
    url = f"/c/{clinic.slug}/friends/{friend.id}/tags"
    assert client.post(url, data={"name": "x", "csrf_token": csrf_token(client)}).status_code == 403
    other = _signed_in(client.application.test_client(), clinic, "responder")
    assert other.post(url, data={"name": "x"}).status_code == 400


def test_a_user_of_one_clinic_gets_404_for_another_clinics_friend(client, clinic):
    other_clinic = gen_clinic(name="別の医院")
    theirs = _friend(other_clinic, "他院 患者")
    _signed_in(client, clinic)
    assert client.get(f"/c/{clinic.slug}/friends/{theirs.id}").status_code == 404
    assert client.get(f"/c/{other_clinic.slug}/friends/{theirs.id}").status_code == 404
    token = csrf_token(client)
    assert (
        client.post(f"/c/{clinic.slug}/friends/{theirs.id}/tags", data={"name": "x", "csrf_token": token}).status_code
        == 404
    )


def test_the_menu_and_dashboard_show_friends(client, clinic):
    _friend(clinic, "一人目")
    _friend(clinic, "二人目")
    _friend(clinic, "ブロック中", status="blocked")
    page = _signed_in(client, clinic, "viewer").get(f"/c/{clinic.slug}/").get_data(as_text=True)
    assert "友だち" in page and f'href="/c/{clinic.slug}/friends"' in page
    assert "友だち（フォロー中）" in page


def test_friends_conversations_tags_and_events_are_isolated_between_clinics(clinic):
    other = gen_clinic(name="別の医院")
    friends = [_friend(c, f"患者 {c.id}") for c in (clinic, other)]
    messages = [_message(c, f, "in", "hello") for c, f in zip((clinic, other), friends, strict=True)]
    tags = [_tag(c, f"タグ{c.id}", f) for c, f in zip((clinic, other), friends, strict=True)]
    events = []
    for c in (clinic, other):
        with tenant_scope(c.id):
            event = WebhookEvent(
                webhook_event_id=f"01ISO{c.id:021d}", event_type="follow", occurred_at=utcnow(), payload={}
            )
            db.session.add(event)
            db.session.commit()
            events.append(_detached(event))
    with tenant_scope(clinic.id):
        links = [_detached(db.session.scalar(sa.select(FriendTag)))]
    with tenant_scope(other.id):
        links.append(_detached(db.session.scalar(sa.select(FriendTag))))
    for model, pair in (
        (Friend, friends),
        (Message, messages),
        (Tag, tags),
        (WebhookEvent, events),
        (FriendTag, links),
    ):
        assert_rows_isolated(model, *pair)


def test_a_sender_can_start_a_single_push_from_the_friend_page(client):
    clinic = gen_clinic()
    friend = _friend(clinic, "山田 花子", status="following")
    login(client, gen_user("sender", clinic=clinic))
    detail = client.get(f"/c/{clinic.slug}/friends/{friend.id}").get_data(as_text=True)
    link = f"/c/{clinic.slug}/deliveries/new?friend={friend.id}"
    assert link in detail
    page = client.get(link).get_data(as_text=True)
    assert "山田 花子" in page


def test_a_viewer_is_not_offered_a_push(client):
    clinic = gen_clinic()
    friend = _friend(clinic, "佐藤 健太", status="following")
    login(client, gen_user("viewer", clinic=clinic))
    detail = client.get(f"/c/{clinic.slug}/friends/{friend.id}").get_data(as_text=True)
    assert "/deliveries/new" not in detail
