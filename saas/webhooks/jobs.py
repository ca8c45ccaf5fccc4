"""Workers' side of webhooks: apply stored events once, recording each outcome on its row.

A webhook request enqueues a job on the ``webhooks`` queue unless the clinic already has one
waiting (see :func:`enqueue`), served by a non-forking worker
(``flask worker --queues webhooks --mode simple``): a job is a few milliseconds of work, far
less than a fork. A job takes its own events and every other pending event of the clinic
(batching what arrived meanwhile). Known friends' plain messages go as one batch
(``saas.friends.batch``), their replies concurrently while the next batch is stored; the other
events go one thread per friend (up to ``PARALLEL_FRIENDS``): a friend's events in order, different
friends' replies to LINE in parallel, so a 1 s LINE round trip does not hold the queue. Events that fail are retried by
RQ's retry with back-off (the job raises at the end), up to ``MAX_ATTEMPTS`` per event; an answer
LINE refuses with a 4xx other than 429 is final (one warning, the error on the event, no retry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app

from saas.common import utcnow
from saas.extensions import db
from saas.friends import batch
from saas.friends.models import Friend
from saas.jobs import job
from saas.queues import WEBHOOKS, get_queue, get_redis
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope
from saas.webhooks.models import EventState, WebhookEvent

log = logging.getLogger(__name__)

# A claim older than this is abandoned (its worker died) and may be taken again: above the job timeout.
CLAIM_TIMEOUT = timedelta(minutes=3)
MAX_ATTEMPTS = 5
BATCH = 200
JOB_SECONDS = 20  # one job keeps claiming batches this long, well inside its RQ timeout
PARALLEL_FRIENDS = 32  # a LINE call is mostly waiting: 32 in flight keep one process busy at 200 ms latency
REPLIES_IN_FLIGHT = 200  # a batch's replies are HTTP calls only (no session each): a batch goes in one round
REFUSED = "refused"  # handle_one's outcome when LINE refused the event's answer for good
QUEUED_MARK_SECONDS = 30  # a lost job's mark stops coalescing after this long (the sweeper waits a minute)


class EventsFailed(RuntimeError):
    """Some events of the batch failed; RQ retries the job, which takes them again."""


def _claimable(now):
    return sa.and_(
        WebhookEvent.attempts < MAX_ATTEMPTS,
        sa.or_(
            WebhookEvent.state.in_([EventState.PENDING, EventState.FAILED]),
            sa.and_(WebhookEvent.state == EventState.PROCESSING, WebhookEvent.claimed_at < now - CLAIM_TIMEOUT),
        ),
    )


def claim(clinic_id: int, event_row_ids: list[int]) -> list[tuple[int, str | None]]:
    """Atomically take these events and the clinic's other pending ones: ``(id, line user id)`` in order."""
    now = utcnow()
    abandoned = sa.and_(WebhookEvent.state == EventState.PROCESSING, WebhookEvent.claimed_at < now - CLAIM_TIMEOUT)
    # A dead worker's claims are taken with the pending events: listed by id only, a crashed
    # batch of 200 came back one event per sweep (the sweeper names a clinic's first event).
    wanted = sa.or_(WebhookEvent.id.in_(event_row_ids), WebhookEvent.state == EventState.PENDING, abandoned)
    candidates = (
        sa.select(WebhookEvent.id)
        .where(WebhookEvent.clinic_id == clinic_id, wanted, _claimable(now))
        .order_by(WebhookEvent.id)
        .limit(BATCH)
    )
    taken = db.session.execute(
        sa.update(WebhookEvent)
        .where(WebhookEvent.id.in_(candidates.scalar_subquery()), _claimable(now))
        .values(state=EventState.PROCESSING, claimed_at=now, attempts=WebhookEvent.attempts + 1)
        .returning(WebhookEvent.id, WebhookEvent.line_user_id)
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    return sorted((row.id, row.line_user_id) for row in taken)


def _finish(event_row_ids: list[int], state: str, error: str | None = None) -> None:
    db.session.execute(
        sa.update(WebhookEvent)
        .where(WebhookEvent.id.in_(event_row_ids))
        .values(state=state, error=error, handled_at=utcnow() if state == EventState.HANDLED else None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _give_up(event_row_id: int, error: str) -> None:
    """A final failure: recorded as FAILED with no attempts left, so no retry claims it again."""
    db.session.execute(
        sa.update(WebhookEvent)
        .where(WebhookEvent.id == event_row_id)
        .values(state=EventState.FAILED, error=error[:2000], attempts=MAX_ATTEMPTS, handled_at=None)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _refused(clinic_id: int, event_row_id: int, exc: Exception) -> None:
    """LINE refused the event's answer for good: one warning, the outcome on the event, no retry."""
    db.session.rollback()
    log.warning("webhook event %s of clinic %s not answered, not retried: %s", event_row_id, clinic_id, exc)
    _give_up(event_row_id, f"{type(exc).__name__}: {exc}")


def handle_one(clinic, event_row_id: int) -> str:
    """Apply one claimed event: ``handled`` (the caller records it, for a friend's events together),
    ``failed`` (recorded on it at once, retried) or ``refused`` (LINE refused its answer: final)."""
    from saas.friends import events
    from saas.friends.replies import AnswerRefused

    try:
        events.handle(clinic, db.session.get(WebhookEvent, event_row_id))
    except AnswerRefused as exc:
        _refused(clinic.id, event_row_id, exc)
        return REFUSED
    except Exception as exc:  # any other failure is recorded on the event and retried; the batch goes on
        db.session.rollback()
        log.exception("webhook event %s of clinic %s failed", event_row_id, clinic.id)
        _finish([event_row_id], EventState.FAILED, f"{type(exc).__name__}: {exc}"[:2000])
        return EventState.FAILED
    return EventState.HANDLED


def _handle_in_order(app, clinic_id: int, event_row_ids: list[int]) -> int:
    """One friend's events, oldest first, in a session of this thread's own; returns failures.

    The handled ones are marked in one statement at the end: should the worker die before,
    they are claimed again after ``CLAIM_TIMEOUT`` and their recorded messages and answers
    are found (``saas.friends.replies.already_recorded``), so nobody is answered twice.
    """
    with app.app_context(), tenant_scope(clinic_id):
        # Each event commits a few times; reloading the clinic, the friend and the event after
        # every commit doubled the statements per event. Rows are re-read by query where it matters.
        db.session().expire_on_commit = False
        clinic = db.session.get(Clinic, clinic_id)
        loaded = db.session.scalars(sa.select(WebhookEvent).where(WebhookEvent.id.in_(event_row_ids))).all()
        outcomes = {event_row_id: handle_one(clinic, event_row_id) for event_row_id in event_row_ids}
        del loaded  # held so that handle_one finds each event in the session's identity map: one read for all
        handled = [event_row_id for event_row_id, outcome in outcomes.items() if outcome == EventState.HANDLED]
        if handled:
            _finish(handled, EventState.HANDLED)
        db.session.remove()
    return sum(outcome == EventState.FAILED for outcome in outcomes.values())


def _by_friend(claimed: list[tuple[int, str | None]]) -> list[list[int]]:
    groups: dict[str | None, list[int]] = {}
    for event_row_id, user_id in claimed:
        groups.setdefault(user_id, []).append(event_row_id)
    return list(groups.values())


@dataclass
class _Replies:
    """A batch whose replies are out at LINE, to be recorded once LINE answered them all."""

    clinic: Clinic
    items: list[batch.Item]
    wait: Callable[[], None]


@job
def handle_webhook_events(clinic_id: int, event_row_ids: list[int]) -> int:
    """Apply a clinic's stored webhook events (these and any other pending); returns how many were handled.

    Claims batch after batch while events wait (up to ``JOB_SECONDS``): a job per batch left the
    worker waiting on the queue between batches while the clinic's events waited in the database.
    While a batch's replies are out at LINE, the next batch is claimed and stored: the worker
    was idle for most of each LINE round trip (and LINE's side of the benchmark for the rest).
    """
    get_redis().delete(queued_mark(clinic_id))  # events stored from now on need a job of their own
    deadline, handled, failures, out = time.monotonic() + JOB_SECONDS, 0, 0, []
    try:
        while True:
            with tenant_scope(clinic_id):
                claimed = claim(clinic_id, event_row_ids)
            event_row_ids = []  # later batches take pending events only: failed ones wait for RQ's back-off
            failures += _handle_batch(clinic_id, claimed, out)
            handled += len(claimed)
            if len(claimed) < BATCH or time.monotonic() > deadline:
                break
    finally:
        failures += _record_replies(out)
    if len(claimed) == BATCH:
        enqueue(clinic_id, [claimed[-1][0]])  # more may be waiting behind this job's time
    if failures:
        raise EventsFailed(f"{failures} of {handled} events of clinic {clinic_id} failed")
    return handled - failures


def _handle_batch(clinic_id: int, claimed: list[tuple[int, str | None]], out: list[_Replies]) -> int:
    """The claimed events: friends' plain messages together (``saas.friends.batch``), the others
    one friend per thread; returns how many failed. The previous batch's replies (in ``out``)
    are recorded once these events are stored and their replies sent; those are left in ``out``."""
    app = current_app._get_current_object()
    handed_back, one_by_one, items, clinic = [], set(), [], None
    if claimed:
        with app.app_context(), tenant_scope(clinic_id):
            db.session().expire_on_commit = False  # the batch's rows stay loaded across its commits
            clinic = db.session.get(Clinic, clinic_id)
            items, one_by_one = _split(claimed)
            stored, handed_back = _store_together(clinic, items)
            db.session.remove()
        items = items if stored else []
    previous, out[:] = list(out), []
    for replies in previous:  # LINE answered them before these go: one batch in flight at a time
        replies.wait()
    if items:
        out.append(_Replies(clinic, items, batch.start_sending(clinic, items, REPLIES_IN_FLIGHT)))
    failures = _record_replies(previous)  # while this batch's replies are out
    handed_back = set(handed_back)
    rest = [(event_id, user_id) for event_id, user_id in claimed if user_id in one_by_one or event_id in handed_back]
    groups = _by_friend(rest)
    if groups:
        with ThreadPoolExecutor(max_workers=min(PARALLEL_FRIENDS, len(groups))) as pool:
            failures += sum(pool.map(lambda ids: _handle_in_order(app, clinic_id, ids), groups))
    return failures


def _split(claimed: list[tuple[int, str | None]]) -> tuple[list[batch.Item], set[str | None]]:
    """The batch's items, and the LINE users whose events are handled one by one (every event of a
    friend goes the same way, so a friend's events keep their order)."""
    events = db.session.scalars(
        sa.select(WebhookEvent)
        .where(WebhookEvent.id.in_([event_id for event_id, _ in claimed]))
        .order_by(WebhookEvent.id)
    ).all()
    user_ids = {event.line_user_id for event in events if event.line_user_id}
    friends = {
        f.line_user_id: f for f in db.session.scalars(sa.select(Friend).where(Friend.line_user_id.in_(user_ids)))
    }
    one_by_one = {e.line_user_id for e in events if not batch.batchable(e, friends.get(e.line_user_id))}
    items = [batch.Item(e, friends[e.line_user_id]) for e in events if e.line_user_id not in one_by_one]
    return items, one_by_one


def _store_together(clinic, items: list[batch.Item]) -> tuple[bool, list[int]]:
    """Step 1 of the batch path; returns (stored, ids of events handed back to be handled one by one)."""
    if not items:
        return False, []
    try:
        batch.store(clinic, items)
    except Exception:  # nothing of the batch is kept: one by one, a failing event fails alone
        db.session.rollback()
        log.exception("batch of %d events of clinic %s failed; handling them one by one", len(items), clinic.id)
        return False, [item.event.id for item in items]
    return True, []


def _record_replies(out: list[_Replies]) -> int:
    """Step 3 of the batch path for the batches in ``out`` (taken from it), once LINE answered
    every reply; returns how many events failed."""
    failures = 0
    while out:
        failures += _record_batch(out.pop(0))
    return failures


def _record_batch(replies: _Replies) -> int:
    replies.wait()
    app, clinic, items = current_app._get_current_object(), replies.clinic, replies.items
    with app.app_context(), tenant_scope(clinic.id):
        try:
            batch.record(clinic, items)
            _finish(
                [item.event.id for item in items if not (batch.needs_push(item) or item.failed)], EventState.HANDLED
            )
        except Exception as exc:  # the answers went out but are not recorded: retried, found unanswered
            db.session.rollback()
            log.exception("answers of %d events of clinic %s not recorded", len(items), clinic.id)
            _finish([item.event.id for item in items], EventState.FAILED, f"{type(exc).__name__}: {exc}"[:2000])
            db.session.remove()
            return len(items)
        for item in items:
            if item.failed:
                _finish([item.event.id], EventState.FAILED, item.failed)
        db.session.remove()
    pushes = [item for item in items if batch.needs_push(item)]
    return sum(1 for item in items if item.failed) + _push_answers(app, clinic.id, pushes)


def _push_answers(app, clinic_id: int, items: list[batch.Item]) -> int:
    """Answers LINE did not take as replies go by push, one event per thread; returns failures."""
    if not items:
        return 0
    work = [(item.event.id, item.friend.id, item.answer) for item in items]
    with ThreadPoolExecutor(max_workers=min(PARALLEL_FRIENDS, len(work))) as pool:
        return sum(pool.map(lambda args: _push_one(app, clinic_id, *args), work))


def _push_one(app, clinic_id: int, event_row_id: int, friend_id: int, messages: list[dict]) -> int:
    from saas.friends import replies

    with app.app_context(), tenant_scope(clinic_id):
        state, error = EventState.HANDLED, None
        try:
            event, friend = db.session.get(WebhookEvent, event_row_id), db.session.get(Friend, friend_id)
            replies.push_answer(db.session.get(Clinic, clinic_id), friend, event, messages)
        except replies.AnswerRefused as exc:
            _refused(clinic_id, event_row_id, exc)
            db.session.remove()
            return 0
        except Exception as exc:  # recorded on the event and retried (one by one: its message is stored)
            db.session.rollback()
            log.exception("push answer to webhook event %s of clinic %s failed", event_row_id, clinic_id)
            state, error = EventState.FAILED, f"{type(exc).__name__}: {exc}"[:2000]
        _finish([event_row_id], state, error)
        db.session.remove()
    return int(state == EventState.FAILED)


@job
def handle_webhook_event(event_row_id: int, clinic_id: int) -> str:
    """One event (jobs enqueued before batching existed): "handled", or "skipped" when done already."""
    return "handled" if handle_webhook_events(clinic_id, [event_row_id]) else "skipped"


def queued_mark(clinic_id: int) -> str:
    """Set while a clinic's job waits in the queue (hash-tagged: the clinic's keys share a slot)."""
    return f"tsunagu:{{clinic:{clinic_id}}}:webhooks:queued"


def enqueue(clinic_id: int, event_row_ids: list[int], *, always: bool = False) -> None:
    """A job on the ``webhooks`` queue for the events a webhook request stored — unless the clinic
    has one queued that has not started: it claims every pending event when it starts, these
    included, so a burst of requests costs one ``SET NX`` each and a single job. The mark
    expires on its own (``QUEUED_MARK_SECONDS``) should that job be lost; the cron sweeper
    (``always``) enqueues regardless.
    """
    if not event_row_ids:
        return
    fresh = get_redis().set(queued_mark(clinic_id), 1, nx=True, ex=QUEUED_MARK_SECONDS)
    if fresh or always:
        get_queue(WEBHOOKS).enqueue(handle_webhook_events, clinic_id, event_row_ids)


@job
def resume_webhook_events() -> int:
    """Cron safety net: re-enqueue clinics whose events wait with no job (Redis lost the queue)."""
    stale = utcnow() - timedelta(minutes=1)
    with platform_scope("webhook sweeper"):
        rows = db.session.execute(
            sa.select(WebhookEvent.clinic_id, sa.func.min(WebhookEvent.id))
            .where(_claimable(utcnow()), WebhookEvent.received_at < stale)
            .group_by(WebhookEvent.clinic_id)
        ).all()
    for clinic_id, first_id in rows:
        enqueue(clinic_id, [first_id], always=True)
    return len(rows)
