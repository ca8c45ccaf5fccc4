"""Portal pages at scale, checked without timing: the number of queries a page runs does not grow
with the clinic's rows, and keyset pages cover every row exactly once (ties and missing dates too)."""

from __future__ import annotations

import re
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.extensions import db
from saas.friends.models import Friend, FriendTag, Message, Tag
from saas.friends.services import conversation, record_message
from saas.inbox import services as inbox
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user
from tests.helpers import login

START = datetime(2026, 1, 5, 1, 0)


def _populate(clinic, count: int, *, start: int = 0) -> None:
    """Friends with tags and a conversation each; some share a follow time, some have none."""
    with tenant_scope(clinic.id):
        tags = [Tag(name=f"タグ{n}") for n in range(3)] if start == 0 else list(db.session.scalars(sa.select(Tag)))
        db.session.add_all(tags)
        db.session.flush()
        for n in range(start, start + count):
            followed = None if n % 7 == 0 else START + timedelta(hours=n // 3)  # ties in threes
            friend = Friend(line_user_id=f"U{clinic.id:04d}{n:028d}", display_name=f"患者{n}", followed_at=followed)
            db.session.add(friend)
            db.session.flush()
            db.session.add_all(FriendTag(friend_id=friend.id, tag_id=tag.id) for tag in tags[: n % 3 + 1])
            record_message(friend, "in", "text", f"質問{n}")
            record_message(friend, "out", "text", f"回答{n}")
        db.session.commit()


@contextmanager
def _counting():
    statements: list[str] = []

    def count(conn, cursor, statement, *args):
        statements.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", count)


def _queries(client, url: str) -> int:
    with _counting() as statements:
        response = client.get(url)
    assert response.status_code == 200, url
    return len(statements)


PAGES = ["/c/{slug}/", "/c/{slug}/friends", "/c/{slug}/inbox/", "/c/{slug}/inbox/list", "/c/{slug}/audit/"]


def test_no_page_runs_more_queries_when_the_clinic_grows(client):
    clinic = gen_clinic()
    _populate(clinic, 4)
    login(client, gen_user("owner", clinic=clinic))
    small = {page: _queries(client, page.format(slug=clinic.slug)) for page in PAGES}
    _populate(clinic, 60, start=4)
    large = {page: _queries(client, page.format(slug=clinic.slug)) for page in PAGES}
    assert all(large[page] <= small[page] for page in PAGES), (small, large)
    friend_page = _queries(client, f"/c/{clinic.slug}/friends")
    # The list once ran 57 queries (one per friend for its tags). Now: 4 to sign the request in, 4 for
    # the list, 2 for the sidebar's clinic tree, 3 for its badges (chats, send approvals, group notices).
    assert friend_page <= 13


def test_an_agency_owners_pages_run_no_more_queries_when_the_agency_grows(client):
    """The sidebar names each clinic's organization: once loaded one query per organization
    (118 statements on the analytics page of an agency with 100 organizations)."""
    agency = gen_agency()
    clinic = gen_clinic(gen_organization(agency=agency))
    login(client, gen_user("owner", agency=agency))
    pages = [*PAGES, "/c/{slug}/analytics/"]
    small = {page: _queries(client, page.format(slug=clinic.slug)) for page in pages}
    for _ in range(6):
        gen_clinic(gen_organization(agency=agency))
    large = {page: _queries(client, page.format(slug=clinic.slug)) for page in pages}
    assert all(large[page] <= small[page] for page in pages), (small, large)


def _follow(client, url: str, marker: str) -> list[str]:
    pages = []
    while url:
        page = client.get(url).get_data(as_text=True)
        pages.append(page)
        found = page.split(f'data-testid="{marker}" href="')
        url = found[1].split('"')[0].replace("&amp;", "&") if len(found) > 1 else None
    return pages


def test_friend_pages_cover_every_friend_exactly_once_in_order(client):
    clinic = gen_clinic()
    _populate(clinic, 130)
    login(client, gen_user("viewer", clinic=clinic))
    pages = _follow(client, f"/c/{clinic.slug}/friends", "friends-next")
    shown = [
        int(cell.split("/friends/")[1].split('"')[0])
        for page in pages
        for cell in page.split('class="friend-cell" href="')[1:]
    ]
    with tenant_scope(clinic.id):
        expected = db.session.scalars(
            sa.select(Friend.id).order_by(Friend.followed_at.desc().nulls_last(), Friend.id.desc())
        ).all()
    assert len(pages) == 3 and shown == list(expected)


def test_filtered_friend_pages_cover_the_filtered_friends_exactly_once(client):
    clinic = gen_clinic()
    _populate(clinic, 120)
    login(client, gen_user("viewer", clinic=clinic))
    with tenant_scope(clinic.id):
        tag = db.session.scalar(sa.select(Tag).where(Tag.name == "タグ2"))
        expected = set(db.session.scalars(sa.select(FriendTag.friend_id).where(FriendTag.tag_id == tag.id)))
    pages = _follow(client, f"/c/{clinic.slug}/friends?tag={tag.id}", "friends-next")
    shown = [
        int(cell.split("/friends/")[1].split('"')[0])
        for page in pages
        for cell in page.split('class="friend-cell" href="')[1:]
    ]
    assert sorted(shown) == sorted(expected) and len(shown) == len(set(shown)) == 40


def test_inbox_pages_cover_every_conversation_exactly_once_newest_first():
    clinic = gen_clinic()
    _populate(clinic, 23)
    with tenant_scope(clinic.id):
        seen, before = [], None
        while True:
            page = inbox.conversations(inbox.InboxFilter(status="all"), 0, limit=5, before=before)
            seen += [row.friend.id for row in page.rows]
            if page.next_before is None:
                break
            before = page.next_before
        newest_first = db.session.scalars(
            sa.select(Message.friend_id).group_by(Message.friend_id).order_by(sa.func.max(Message.id).desc())
        ).all()
    assert seen == list(newest_first)


def test_message_pages_cover_a_long_conversation_exactly_once():
    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        friend = Friend(line_user_id="U" + "1" * 32, display_name="長い会話")
        db.session.add(friend)
        db.session.flush()
        for n in range(47):
            record_message(friend, "in" if n % 2 else "out", "text", str(n))
        db.session.commit()
        older, before = [], None
        while True:
            page = conversation(friend, limit=10, before=before)
            if not page:
                break
            older = [m.text for m in page] + older
            before = page[0].id
        assert older == [str(n) for n in range(47)]
        assert [m.text for m in conversation(friend, limit=5, after=page_id(friend, 40))] == [
            "41",
            "42",
            "43",
            "44",
            "45",
        ]


def page_id(friend, n: int) -> int:
    return db.session.scalar(sa.select(Message.id).where(Message.friend_id == friend.id, Message.text == str(n)))


@pytest.mark.parametrize("count", [0, 50, 51, 123])
def test_audit_pages_cover_every_event_exactly_once(client, count):
    clinic = gen_clinic()
    admin = gen_user("admin", clinic=clinic)
    at = datetime(2026, 3, 1, 9)
    db.session.add_all(
        AuditEvent(
            clinic_id=clinic.id,
            action="conversation.view",
            target_type="friend",
            target_id=str(n),
            created_at=at + timedelta(minutes=n // 4),
        )  # four events per minute: ties
        for n in range(count)
    )
    db.session.commit()
    login(client, admin)
    pages = _follow(client, f"/c/{clinic.slug}/audit/?action=conversation.view", "audit-next")
    shown = [int(n) for page in pages for n in re.findall(r"<td>友だち #(\d+)</td>", page)]
    assert sorted(shown) == list(range(count)) and len(shown) == count


def test_opening_a_conversation_marks_it_read_within_its_statement_budget(client):
    from saas.inbox.models import Conversation

    clinic = gen_clinic()
    _populate(clinic, 6)
    login(client, gen_user("owner", clinic=clinic))
    with tenant_scope(clinic.id):
        friend_id = db.session.scalars(sa.select(Friend.id).order_by(Friend.id)).first()
    url = f"/c/{clinic.slug}/inbox/{friend_id}"
    client.get(url)
    with tenant_scope(clinic.id):
        friend = db.session.get(Friend, friend_id)
        record_message(friend, "in", "text", "新しい質問")
        db.session.commit()
    # 33 before: the conversation row was read again after marking it read, its chat state twice;
    # 31 before: two reads of the month's usage, an INSERT per audit event, the user re-read after the commit
    assert _queries(client, url) <= 28
    db.session.expire_all()
    with tenant_scope(clinic.id):
        row = db.session.scalars(sa.select(Conversation).where(Conversation.friend_id == friend_id)).one()
        assert row.unread_count == 0 and row.last_read_message_id == row.last_message_id
    assert "新しい質問" in client.get(url).get_data(as_text=True)
