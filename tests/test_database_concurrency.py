"""The database under concurrent writers: no request or job ever fails with "database is locked".

On the embedded default (SQLite) this exercises WAL, the busy timeout and immediate write
transactions (``saas.database``); on Postgres the same workload must pass too.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests
import sqlalchemy as sa

from saas.extensions import db
from saas.friends import services as friends
from saas.friends.models import Direction, Friend, Message
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_clinic
from tests.webhooks.support import connect_clinic, post_events, text_event, webhook_url

THREADS = 12
ROUNDS = 25


def _read_then_write(app, clinic_id: int, user_id: str, start: threading.Barrier) -> int:
    """What a webhook job does: read the friend, then write to it, in one transaction per round."""
    start.wait(timeout=30)
    with app.app_context(), tenant_scope(clinic_id):
        for n in range(ROUNDS):
            friend, _ = friends.get_or_create_friend(user_id)
            db.session.flush()
            count = db.session.scalar(sa.select(sa.func.count(Message.id)).where(Message.friend_id == friend.id))
            friends.record_message(friend, Direction.IN, "text", f"{count}-{n}")
            friend.display_name = f"患者{count}"
            db.session.commit()
        db.session.remove()
    return ROUNDS


def test_concurrent_read_then_write_transactions_all_commit(app):
    clinic_id = gen_clinic().id
    start = threading.Barrier(THREADS)
    users = [f"U{i % 3:032x}" for i in range(THREADS)]  # several threads share each friend row
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        done = list(pool.map(lambda user: _read_then_write(app, clinic_id, user, start), users))
    assert sum(done) == THREADS * ROUNDS
    db.session.expire_all()
    with tenant_scope(clinic_id):
        assert db.session.scalar(sa.select(sa.func.count(Message.id))) == THREADS * ROUNDS
        assert db.session.scalar(sa.select(sa.func.count(Friend.id))) == 3


def test_webhooks_acked_while_jobs_write_never_answer_500(app, sandbox, live_server):
    clinic, _ = connect_clinic(sandbox, live_server)
    url, secret = webhook_url(live_server, clinic), clinic.line_channel_secret
    clinic_id = clinic.id
    start = threading.Barrier(THREADS + 1)
    writers = ThreadPoolExecutor(max_workers=THREADS)
    jobs = [writers.submit(_read_then_write, app, clinic_id, f"U{i:032x}", start) for i in range(THREADS)]
    start.wait(timeout=30)
    events = [text_event(f"U{i % 7:032x}", f"m{i}") for i in range(300)]
    with requests.Session() as session, ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(lambda e: post_events(url, secret, [e], session=session).status_code, events))
    assert [job.result(timeout=120) for job in jobs] == [ROUNDS] * THREADS
    writers.shutdown()
    assert statuses == [200] * len(events)


def _insert_message(app, clinic_id: int, friend_id: int, text: str) -> None:
    with app.app_context(), tenant_scope(clinic_id):
        db.session.add(Message(friend_id=friend_id, direction=Direction.IN, kind="text", text=text, payload={}))
        db.session.commit()
        db.session.remove()


def test_a_transaction_that_reads_in_a_savepoint_then_writes_is_not_refused_by_another_writer(app):
    """SQLite refuses to turn a read snapshot into a write lock once another writer committed."""
    clinic_id = gen_clinic().id
    with tenant_scope(clinic_id):
        friend, _ = friends.get_or_create_friend("U" + "a" * 32)
        db.session.commit()
        friend_id = friend.id
        with db.session.begin_nested():  # a savepoint opens the transaction, then a read
            db.session.scalar(sa.select(sa.func.count(Message.id)))
            other = threading.Thread(target=_insert_message, args=(app, clinic_id, friend_id, "他の処理"))
            other.start()
            other.join(timeout=3)  # a writer that may finish first (or queue behind us)
            db.session.add(Message(friend_id=friend_id, direction=Direction.IN, kind="text", text="私", payload={}))
        db.session.commit()
        other.join(timeout=60)
        assert not other.is_alive()
        texts = set(db.session.scalars(sa.select(Message.text)))
    assert texts == {"他の処理", "私"}
