"""Helpers for inbox tests: a connected clinic with a signed-in responder and patients who write."""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db
from saas.friends.models import Friend, Message
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_user
from tests.helpers import login
from tests.webhooks.support import connect_clinic, run_jobs


def setup_chat(sandbox, live_server, client, role: str = "responder"):
    """(clinic, channel, user) with the user signed in on ``client``."""
    clinic, channel = connect_clinic(sandbox, live_server)
    user = gen_user(role, clinic=clinic)
    login(client, user)
    return clinic, channel, user


def patient_writes(sandbox, channel: str, name: str, *texts: str, user_id: str | None = None) -> str:
    """A patient (new unless ``user_id``) sends texts; the webhook jobs run. Returns the LINE user id."""
    if user_id is None:
        user_id = sandbox.add_patient(channel, name)
        sandbox.follow(channel, user_id)
    for text in texts:
        sandbox.send_text(channel, user_id, text)
    run_jobs()
    return user_id


def friend_of(clinic, line_user_id: str) -> Friend:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        friend = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == line_user_id))
        db.session.expunge(friend)  # a snapshot: later commits elsewhere must not expire it
        return friend


def texts_of(clinic, friend_id: int) -> list[tuple[str, str]]:
    with tenant_scope(clinic.id):
        rows = db.session.scalars(sa.select(Message).where(Message.friend_id == friend_id).order_by(Message.id))
        return [(m.direction, m.text) for m in rows]


def post(client, url: str, data: dict | None = None):
    from tests.conftest import csrf_token

    return client.post(url, data={**(data or {}), "csrf_token": csrf_token(client)})
