"""What handling one webhook event costs the worker in SQL statements: a few, whatever the clinic's size.

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

# 24 before the worker kept rows loaded across commits; 17 with the daily roll-up's upsert per stored
# message (saas/portal/models.py, in and out) and the answer's receipt (saas/receipts); 16 since a
# friend's events are read in one statement and marked handled in one, and an event on its first
# claim skips the "already recorded?" queries.
STATEMENTS_PER_ANSWERED_MESSAGE = 16


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


def test_an_answered_message_from_a_known_friend_costs_a_few_statements(sandbox, live_server):
    clinic, channel_id = connect_clinic(sandbox, live_server)
    with tenant_scope(clinic.id):
        db.session.add(
            AutoReplyRule(name="診療時間", keywords=["診療時間"], messages=[{"type": "text", "text": "9時からです"}])
        )
        db.session.commit()
    user_id = sandbox.add_patient(channel_id, "山田 花子")
    sandbox.follow(channel_id, user_id)
    sandbox.send_text(channel_id, user_id, "こんにちは")
    run_jobs()  # the follow creates the friend and fetches the profile

    sandbox.send_text(channel_id, user_id, "診療時間を教えてください")
    with StatementLog(db.engine) as log:
        run_jobs()

    with tenant_scope(clinic.id):
        answers = db.session.scalars(sa.select(Message.text).where(Message.direction == Direction.OUT)).all()
    assert answers[-1:] == ["9時からです"]
    assert [(m["via"], m["message"]["text"]) for m in sandbox.inbox(channel_id, user_id)][-1:] == [
        ("reply", "9時からです")
    ]
    assert len(log.statements) <= STATEMENTS_PER_ANSWERED_MESSAGE, "\n".join(log.statements)
