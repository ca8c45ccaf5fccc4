"""What handling webhook events costs the worker in SQL statements: a few per batch, whatever its size.

The webhook worker must handle hundreds of events a second (issue 11's goal: ≥ 200/s per
process) so that every reply goes out within the reply token's minute; each statement is a
round trip and ORM work. The figure is a bound, not a timing.
"""

from __future__ import annotations

import sqlalchemy as sa

from saas.autoreply.models import AutoReplyRule
from saas.extensions import db
from saas.friends.models import Direction, Message
from saas.tenancy.scoping import tenant_scope
from tests.webhooks.support import connect_clinic, run_jobs

# One answered message cost 24 statements before the worker kept rows loaded across commits, then 16
# per event; since friends' plain messages are handled as a batch (saas/friends/batch.py) the whole
# batch costs what one event did: each statement is one multi-row INSERT or executemany for all.
# 17 since the events whose reply goes to LINE are marked before the call (one UPDATE for all):
# a retry after a crash then never answers them again by push.
STATEMENTS_PER_BATCH = 17


class StatementLog:
    def __init__(self, engine):
        self.engine, self.statements = engine, []

    def __enter__(self):
        sa.event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc):
        sa.event.remove(self.engine, "before_cursor_execute", self._record)

    def _record(self, conn, cursor, statement, parameters, context, executemany):
        self.statements.append(statement.split("\n")[0][:120])


def test_a_batch_of_answered_messages_from_known_friends_costs_what_one_message_did(sandbox, live_server):
    clinic, channel_id = connect_clinic(sandbox, live_server)
    with tenant_scope(clinic.id):
        db.session.add(
            AutoReplyRule(name="診療時間", keywords=["診療時間"], messages=[{"type": "text", "text": "9時からです"}])
        )
        db.session.commit()
    patients = [sandbox.add_patient(channel_id, f"患者{n}") for n in range(5)]
    for user_id in patients:
        sandbox.follow(channel_id, user_id)
        sandbox.send_text(channel_id, user_id, "こんにちは")
    run_jobs()  # the follows create the friends and fetch their profiles

    for user_id in patients:
        sandbox.send_text(channel_id, user_id, "診療時間を教えてください")
        sandbox.send_text(channel_id, user_id, "土曜の診療時間は？")
    with StatementLog(db.engine) as log:
        run_jobs()

    with tenant_scope(clinic.id):
        answers = db.session.scalars(sa.select(Message.text).where(Message.direction == Direction.OUT)).all()
    assert answers.count("9時からです") == 10
    for user_id in patients:
        assert [(m["via"], m["message"]["text"]) for m in sandbox.inbox(channel_id, user_id)][-2:] == [
            ("reply", "9時からです")
        ] * 2
    assert len(log.statements) <= STATEMENTS_PER_BATCH, "\n".join(log.statements)
