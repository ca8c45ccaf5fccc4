"""Links in answers to one friend (auto-replies, 1:1 chat) are that friend's own short links."""

from __future__ import annotations

import sqlalchemy as sa

from saas.autoreply.models import AutoReplyRule
from saas.extensions import db
from saas.links.models import LinkClick
from saas.tenancy.scoping import tenant_scope
from tests.inbox.support import friend_of, patient_writes, post, setup_chat
from tests.links.test_links import PATIENT, SHORT

ACCESS = "https://maps.example.jp/clinic?q=1"


def clicks(clinic) -> list[tuple]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return db.session.execute(sa.select(LinkClick.friend_id, LinkClick.delivery_id)).all()


def test_an_auto_reply_and_a_chat_message_carry_the_friends_own_tracked_links(sandbox, live_server, client, app):
    clinic, channel, _ = setup_chat(sandbox, live_server, client)
    with tenant_scope(clinic.id):
        db.session.add(
            AutoReplyRule(
                name="アクセス", keywords=["アクセス"], messages=[{"type": "text", "text": f"地図です {ACCESS}"}]
            )
        )
        db.session.commit()
    patient = patient_writes(sandbox, channel, "伊藤 健", "アクセス")
    friend = friend_of(clinic, patient)
    answer = sandbox.inbox(channel, patient)[-1]["message"]["text"]
    assert ACCESS not in answer
    taps = app.test_client()
    first = SHORT.search(answer).group(1)
    assert taps.get(f"/l/{first}", headers={"User-Agent": PATIENT}).headers["Location"] == ACCESS
    assert clicks(clinic) == [(friend.id, None)]

    post(client, f"/c/{clinic.slug}/inbox/{friend.id}/send", {"text": f"こちらをご覧ください {ACCESS}", "via": "push"})
    chat = sandbox.inbox(channel, patient)[-1]["message"]["text"]
    code = SHORT.search(chat).group(1)
    assert ACCESS not in chat and code != first
    assert taps.get(f"/l/{code}", headers={"User-Agent": PATIENT}).headers["Location"] == ACCESS
    assert clicks(clinic) == [(friend.id, None), (friend.id, None)]
