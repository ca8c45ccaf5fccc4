"""The sweeper's work: the database is the source of truth for what a send still has to do.

RQ jobs are only pointers. A worker killed mid-job, a Redis restart that lost the queues, or a
database blip that failed a job past its retries leave rows behind that say what remains:
- a delivery waiting to be planned, or planning without a heartbeat → its planning job again;
- a chunk SENDING without a heartbeat → PENDING, and its job again (same retry key: LINE
  answers 409 if the lost attempt got through, which counts as sent);
- a PENDING chunk whose job is not queued or scheduled in Redis → its job again (one a dying
  worker had taken from the queue but not started counts as not queued); a job
  scheduled (a retry, a rate-limit deferral) but overdue by more than the stale time counts
  as lost: RQ's scheduler ran inside a worker that died, and a replacement only takes the
  scheduler over at its next maintenance, so the sweeper enqueues the job itself;
- a SENDING delivery with nothing left open → finished (counts, outcome, quota given back);
- a quota grant in Redis whose reservation row was never committed → given back.
Enqueuing twice is harmless: every job claims its row before doing anything.
"""

from __future__ import annotations

import logging
from datetime import UTC, timedelta

import sqlalchemy as sa
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry

from saas.common import utcnow
from saas.delivery.models import ChunkStatus, Delivery, DeliveryChunk, DeliveryKind, DeliveryStatus
from saas.delivery.planner import STALE_SECONDS, setting
from saas.delivery.services import finish_if_complete, plan_job_id, start_job_id
from saas.extensions import db
from saas.queues import get_queue, get_redis
from saas.quota.counter import give_back_orphaned_grants
from saas.tenancy.scoping import platform_scope, tenant_scope

log = logging.getLogger(__name__)
WAITING = (JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED)


def _stale_before():
    return utcnow() - timedelta(seconds=setting("DELIVERY_STALE_SECONDS", STALE_SECONDS))


def _rows(reason: str, statement) -> list:
    with platform_scope(reason):
        return db.session.execute(statement).all()


def _waiting(job_ids: list[str]) -> set[str]:
    """The ids among ``job_ids`` that RQ will still run: in a queue, deferred, or scheduled and not overdue.

    A job whose status says queued but which no queue holds was taken by a worker that died
    before starting it: RQ keeps it in the queue's intermediate list and fails it only at a
    maintenance run minutes later, so it counts as lost.
    """
    if not job_ids:
        return set()
    overdue_before = _stale_before().replace(tzinfo=UTC)
    jobs = [job for job in Job.fetch_many(job_ids, connection=get_redis()) if job is not None]
    queued = {origin: set(get_queue(origin).get_job_ids()) for origin in {job.origin for job in jobs}}
    return {job.id for job in jobs if _will_run(job, overdue_before, queued[job.origin])}


def _will_run(job: Job, overdue_before, queued_ids: set[str]) -> bool:
    status = job.get_status(refresh=False)
    if status == JobStatus.QUEUED:
        return job.id in queued_ids
    if status != JobStatus.SCHEDULED:
        return status in WAITING
    registry = ScheduledJobRegistry(job.origin, connection=job.connection)
    try:
        return registry.get_scheduled_time(job) >= overdue_before
    except NoSuchJobError:  # left the registry a moment ago; enqueuing it twice is harmless
        return False


def _enqueue_now(queue, func, *args, job_id: str, **options) -> None:
    """Enqueue at once, taking the job out of the schedule, or out of a dead worker's hands, first."""
    ScheduledJobRegistry(queue=queue).remove(job_id)
    queue.intermediate_queue.remove(job_id)
    queue.enqueue(func, *args, job_id=job_id, **options)


def heal() -> dict:
    """One sweep; returns how many things of each kind it set going again."""
    return {
        "planning": restart_planning(),
        "chunks": restart_chunks(),
        "finished": finish_forgotten(),
        "quota_given_back": _give_back_grants(),
    }


def restart_planning(*, due_only: bool = False) -> int:
    """Enqueue planning for deliveries that are due (or stuck planning) and have no live job."""
    now, stale = utcnow(), _stale_before()
    due = sa.and_(Delivery.status == DeliveryStatus.SCHEDULED, Delivery.scheduled_at <= now)
    waiting = sa.and_(
        Delivery.status == DeliveryStatus.SCHEDULED, Delivery.scheduled_at.is_(None), Delivery.updated_at < stale
    )
    stuck = sa.and_(Delivery.status == DeliveryStatus.PLANNING, Delivery.updated_at < stale)
    condition = due if due_only else sa.or_(due, waiting, stuck)
    rows = _rows(
        "sweeper: deliveries to plan", sa.select(Delivery.id, Delivery.clinic_id, Delivery.kind).where(condition)
    )
    alive = _waiting([plan_job_id(r.id) for r in rows] + [start_job_id(r.id) for r in rows])
    from saas.delivery.jobs import start_delivery

    started = 0
    for delivery_id, clinic_id, kind in rows:
        if plan_job_id(delivery_id) in alive or start_job_id(delivery_id) in alive:
            continue
        queue = get_queue("urgent" if kind == DeliveryKind.URGENT else "default")
        _enqueue_now(queue, start_delivery, delivery_id, clinic_id, job_id=plan_job_id(delivery_id))
        started += 1
    return started


def restart_chunks() -> int:
    """Chunks of live deliveries that nobody is working on: back to PENDING and enqueued."""
    stale = _stale_before()
    rows = _rows(
        "sweeper: chunks without a job",
        sa.select(
            DeliveryChunk.id, DeliveryChunk.clinic_id, DeliveryChunk.status, DeliveryChunk.attempts, Delivery.kind
        )
        .join(Delivery, Delivery.id == DeliveryChunk.delivery_id)
        .where(
            Delivery.status.in_((DeliveryStatus.SENDING, DeliveryStatus.PLANNING)),
            DeliveryChunk.status.in_((ChunkStatus.PENDING, ChunkStatus.SENDING)),
            DeliveryChunk.updated_at < stale,
        ),
    )
    job_id = "delivery-chunk-{}-{}".format
    alive = _waiting([job_id(r.id, r.attempts) for r in rows if r.status == ChunkStatus.PENDING])
    from saas.delivery.jobs import send_chunk

    restarted = 0
    for chunk_id, clinic_id, status, attempts, kind in rows:
        if status == ChunkStatus.PENDING and job_id(chunk_id, attempts) in alive:
            continue
        with tenant_scope(clinic_id):
            if status == ChunkStatus.SENDING and not _take_back(chunk_id, stale):
                continue
        queue = get_queue("urgent" if kind == DeliveryKind.URGENT else "bulk")
        _enqueue_now(queue, send_chunk, chunk_id, clinic_id, job_id=job_id(chunk_id, attempts), result_ttl=600)
        restarted += 1
    if restarted:
        log.warning("sweeper re-enqueued %s delivery chunks", restarted)
    return restarted


def _take_back(chunk_id: int, stale) -> bool:
    """SENDING without a heartbeat → PENDING (only if still so: the worker may just have finished)."""
    changed = db.session.execute(
        sa.update(DeliveryChunk)
        .where(
            DeliveryChunk.id == chunk_id,
            DeliveryChunk.status == ChunkStatus.SENDING,
            DeliveryChunk.updated_at < stale,
        )
        .values(status=ChunkStatus.PENDING, updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return changed.rowcount == 1


def finish_forgotten() -> int:
    """Deliveries whose last chunk is done but whose finishing step was lost (crash in between)."""
    open_chunks = (
        sa.select(DeliveryChunk.id)
        .where(
            DeliveryChunk.delivery_id == Delivery.id,
            DeliveryChunk.status.in_((ChunkStatus.PENDING, ChunkStatus.SENDING)),
        )
        .exists()
    )
    rows = _rows(
        "sweeper: deliveries to finish",
        sa.select(Delivery.id, Delivery.clinic_id).where(
            Delivery.status.in_((DeliveryStatus.SENDING, DeliveryStatus.CANCELLED, DeliveryStatus.STOPPED)),
            Delivery.finished_at.is_(None),
            Delivery.updated_at < _stale_before(),
            ~open_chunks,
        ),
    )
    finished = 0
    for delivery_id, clinic_id in rows:
        with tenant_scope(clinic_id):
            finished += finish_if_complete(delivery_id)
    return finished


def _give_back_grants() -> int:
    with platform_scope("sweeper: orphaned quota grants"):
        return give_back_orphaned_grants(older_than_seconds=setting("QUOTA_ORPHAN_GRANT_SECONDS", 120))
