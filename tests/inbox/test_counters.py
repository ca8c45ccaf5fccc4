"""Conversation counters kept as messages are stored: they always equal a recount of the messages
(new messages, reads, status changes, erasure), the badge reads them, and the list's poll is cheap."""

from __future__ import annotations

import random

import sqlalchemy as sa

from saas.extensions import db
from saas.friends.models import Friend, Message
from saas.friends.services import record_message
from saas.inbox import services
from saas.inbox.models import Conversation, ConversationStatus
from saas.privacy.services import erase
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_clinic, gen_user
from tests.helpers import login


def _friends(clinic, count: int) -> list[int]:
    with tenant_scope(clinic.id):
        friends = [Friend(line_user_id=f"U{clinic.id:04d}{n:028d}", display_name=f"患者{n}") for n in range(count)]
        db.session.add_all(friends)
        db.session.commit()
        return [f.id for f in friends]


def _write(clinic, friend_id: int, direction: str = "in", text: str = "こんにちは") -> None:
    with tenant_scope(clinic.id):
        record_message(db.session.get(Friend, friend_id), direction, "text", text)
        db.session.commit()


def _recount(clinic) -> dict[int, tuple[int | None, int]]:
    """(newest message id, unread patient messages) per friend, counted from the messages."""
    with tenant_scope(clinic.id):
        markers = dict(db.session.execute(sa.select(Conversation.friend_id, Conversation.last_read_message_id)).all())
        result = {}
        for friend_id, newest in db.session.execute(
            sa.select(Message.friend_id, sa.func.max(Message.id)).group_by(Message.friend_id)
        ):
            unread = db.session.scalar(
                sa.select(sa.func.count()).where(
                    Message.friend_id == friend_id, Message.direction == "in", Message.id > markers.get(friend_id, 0)
                )
            )
            result[friend_id] = (newest, unread)
        return result


def _counters(clinic) -> dict[int, tuple[int | None, int]]:
    with tenant_scope(clinic.id):
        rows = db.session.execute(
            sa.select(Conversation.friend_id, Conversation.last_message_id, Conversation.unread_count).where(
                Conversation.last_message_id.is_not(None)
            )
        )
        return {friend_id: (newest, unread) for friend_id, newest, unread in rows}


def _badge(clinic) -> int:
    return services.unanswered_counts([clinic.id]).get(clinic.id, 0)


def test_counters_equal_a_recount_after_messages_reads_status_changes_and_erasure():
    clinic = gen_clinic()
    ids = _friends(clinic, 6)
    rng = random.Random(18)
    for step in range(80):
        friend_id = rng.choice(ids)
        action = rng.random()
        with tenant_scope(clinic.id):
            friend = db.session.get(Friend, friend_id)
            if friend is None or friend.status == services.ERASED:
                continue
            if action < 0.55:
                record_message(friend, "in", "text", f"質問{step}")
            elif action < 0.7:
                record_message(friend, "out", "text", f"回答{step}")
            elif action < 0.85:
                services.mark_read(friend)
            elif action < 0.97:
                services.set_status(friend, rng.choice(list(ConversationStatus)))
            else:
                erase(friend)
            db.session.commit()
        assert _counters(clinic) == _recount(clinic), f"after step {step}"


def test_the_badge_counts_unread_unresolved_conversations_and_follows_reads_replies_and_erasure():
    clinic = gen_clinic()
    first, second = _friends(clinic, 2)
    assert _badge(clinic) == 0
    _write(clinic, first)
    _write(clinic, first)
    _write(clinic, second)
    assert _badge(clinic) == 2
    with tenant_scope(clinic.id):
        services.mark_read(db.session.get(Friend, first))
        db.session.commit()
    assert _badge(clinic) == 1
    _write(clinic, first, "out", "承知しました")  # our reply is not a new unread message
    assert _badge(clinic) == 1
    with tenant_scope(clinic.id):
        erase(db.session.get(Friend, second))
        db.session.commit()
    assert _badge(clinic) == 0


def test_a_patient_message_reopens_a_resolved_conversation():
    clinic = gen_clinic()
    (friend_id,) = _friends(clinic, 1)
    _write(clinic, friend_id)
    with tenant_scope(clinic.id):
        friend = db.session.get(Friend, friend_id)
        services.mark_read(friend)
        services.set_status(friend, ConversationStatus.RESOLVED)
        db.session.commit()
        assert services.conversations(services.InboxFilter(), 0).rows == []
    _write(clinic, friend_id, text="もう一つ質問です")
    with tenant_scope(clinic.id):
        (row,) = services.conversations(services.InboxFilter(), 0).rows
        assert (row.status, row.unread, row.last_message.text) == (ConversationStatus.OPEN, 1, "もう一つ質問です")
    assert _badge(clinic) == 1


def test_the_list_polls_a_cheap_change_marker_that_moves_on_new_messages_and_reads(client):
    clinic = gen_clinic()
    (friend_id,) = _friends(clinic, 1)
    login(client, gen_user("responder", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/inbox/").get_data(as_text=True)
    poll = page.split('data-testid="inbox-poll"')[0].rsplit('hx-get="', 1)[1].split('"')[0].replace("&amp;", "&")
    assert client.get(poll).status_code == 204
    _write(clinic, friend_id, text="予約できますか")
    changed = client.get(poll)
    assert changed.status_code == 200 and changed.headers["HX-Trigger"] == "inbox-changed"
    listing = client.get(f"/c/{clinic.slug}/inbox/list").get_data(as_text=True)
    assert "予約できますか" in listing
    fresh_poll = listing.split('data-testid="inbox-poll"')[0].rsplit('hx-get="', 1)[1].split('"')[0]
    assert client.get(fresh_poll.replace("&amp;", "&")).status_code == 204
    client.get(f"/c/{clinic.slug}/inbox/{friend_id}")  # opening it reads it: the list must show that
    assert client.get(fresh_poll.replace("&amp;", "&")).status_code == 200


def test_counters_of_one_clinic_never_move_for_another_clinics_messages():
    mine, other = gen_clinic(name="A"), gen_clinic(name="B")
    (my_friend,) = _friends(mine, 1)
    (their_friend,) = _friends(other, 1)
    _write(other, their_friend)
    _write(other, their_friend)
    assert _badge(mine) == 0 and _counters(mine) == {}
    _write(mine, my_friend)
    assert services.unanswered_counts([mine.id, other.id]) == {mine.id: 1, other.id: 1}
