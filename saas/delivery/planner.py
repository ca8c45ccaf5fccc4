"""Planning a delivery, in a job (never in the web request).

1. The quota for the whole send is reserved in the same transaction that stores the
   reservation and the target on the delivery (``quota.counter.reserving``): a crash before
   that commit leaves nothing reserved, after it a plan that resumes.
2. Chunks are written in batches of ``DELIVERY_PLAN_BATCH`` friends, each batch one
   transaction. On Postgres one ``INSERT … SELECT`` numbers the batch's friends in id order and
   groups them by 500 into chunk rows (``DeliveryChunk.friend_ids``) without the ids leaving the
   database; elsewhere one query for the ids, then one multi-row insert. 200 rows for 100,000
   friends, no row per recipient. ``Delivery.planned`` counts progress for the page, and the
   next batch starts after the highest friend id already planned (``last_friend_id``), so a
   crashed plan resumes where it stopped and nobody is planned twice. A template with
   per-friend variables is grouped in Python (the rendering differs per friend): groups with
   one rendering become multicast chunks, friends with their own become push chunks with a
   :class:`DeliveryRecipient` row each (their rendering and retry key). URLs become short
   tracked links (saas.links) in the same transaction: per recipient (so every friend a push)
   when the delivery counts clicks per friend, else one code per URL and the multicast kept.
3. Each batch's chunks are enqueued as soon as they are committed; the database stays the
   source of truth for what remains (the sweeper re-enqueues what Redis lost).
"""

from __future__ import annotations

import contextlib
import logging
import uuid

import redis
import sqlalchemy as sa
from flask import current_app
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.orm.attributes import set_committed_value

from saas.audit import services as audit
from saas.common import utcnow
from saas.delivery import audience
from saas.delivery.models import ChunkStatus, Delivery, DeliveryChunk, DeliveryRecipient, DeliveryStatus
from saas.extensions import db
from saas.friends.models import Friend, FriendStatus
from saas.links import services as links
from saas.links.rewrite import links_in
from saas.messaging.objects import MessageValidationError
from saas.messaging.variables import (
    PER_RECIPIENT_PREFIXES,
    clinic_context,
    ensure_valid,
    group_recipients_by_rendering,
    prepare_template,
    render,
    variables_in,
)
from saas.quota.counter import QuotaExceeded, reserving
from saas.tenancy.models import Clinic

log = logging.getLogger(__name__)
CHUNK_SIZE = 500
PLAN_BATCH = 50_000  # friends per transaction: two for 100,000 (each batch is ~5 statements and a commit)
STALE_SECONDS = 30.0  # a planning or sending job that has not beaten for this long is taken over
RETRY_WINDOW_SECONDS = 23 * 3600  # LINE keeps a retry key for 24 h (line-platform.md §1.6): an hour's margin


def setting(name: str, default: float) -> float:
    """A numeric delivery setting from the app config (tests and benchmarks shorten them)."""
    value = current_app.config.get(name)
    return float(default if value is None else value)


def _claim(delivery_id: int) -> bool:
    """SCHEDULED → PLANNING, or take over a plan whose job stopped beating (crashed worker)."""
    stale = utcnow() - _seconds(setting("DELIVERY_STALE_SECONDS", STALE_SECONDS))
    changed = db.session.execute(
        sa.update(Delivery)
        .where(
            Delivery.id == delivery_id,
            sa.or_(
                Delivery.status == DeliveryStatus.SCHEDULED,
                sa.and_(Delivery.status == DeliveryStatus.PLANNING, Delivery.updated_at < stale),
            ),
        )
        .values(status=DeliveryStatus.PLANNING, updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return changed.rowcount == 1


def _seconds(value: float):
    from datetime import timedelta

    return timedelta(seconds=value)


def plan(delivery_id: int) -> list[int]:
    """Plan (or resume planning) a delivery; returns the ids of the chunks it created. Commits."""
    if not _claim(delivery_id):
        return []
    delivery = db.session.get(Delivery, delivery_id)
    db.session.refresh(delivery)
    if delivery.reservation is None and not _marketing_allowed(delivery):
        return []
    if delivery.reservation is None and not _reserve(delivery):
        return []
    created = _plan_batches(delivery)
    _planning_done(delivery_id)
    return created


def _plan_batches(delivery: Delivery) -> list[int]:
    """Every batch, each committed and enqueued; returns the chunk ids created.

    The delivery and its clinic stay loaded across the batches' commits: re-reading them after
    every commit was a third of a plan's statements. What another process changes meanwhile (a
    cancel) is checked in SQL by each batch's guarded UPDATE.
    """
    session = db.session()
    keep, session.expire_on_commit = session.expire_on_commit, False
    created: list[int] = []
    try:
        while batch := _plan_batch(delivery):
            created += batch
            enqueue_chunks(delivery, batch)
    finally:
        session.expire_on_commit = keep
        session.expire_all()
    return created


def _marketing_allowed(delivery: Delivery) -> bool:
    """A scheduled marketing send or a step coming due while billing has marketing paused ends refused."""
    from saas.delivery.services import refused_for_billing

    return not refused_for_billing(delivery)


def _audience_size(delivery: Delivery) -> tuple[int, dict]:
    if delivery.resend_of_id:
        from saas.delivery.resend import failed_count

        return failed_count(delivery.resend_of_id), {}
    counts = audience.count_audience(delivery.kind, delivery.segment, delivery.friend_id)
    return counts.eligible, counts.skipped


def _reserve(delivery: Delivery) -> bool:
    """Reserve the quota and fix the target, in one commit; False when the send ends here."""
    try:
        prepare_template(delivery.messages)
    except MessageValidationError as invalid:
        return _end(delivery, DeliveryStatus.REFUSED, f"メッセージに問題があります: {invalid}")
    wanted, skipped = _audience_size(delivery)
    try:
        with reserving(
            delivery.clinic_id, wanted, allow_trim=delivery.allow_trim, purpose=f"delivery:{delivery.id}"
        ) as reservation:
            if reservation.trimmed:
                skipped["over_quota"] = reservation.trimmed
            delivery.reservation, delivery.skipped = reservation.as_dict(), skipped
            delivery.targeted, delivery.planned = reservation.granted, 0
            delivery.started_at = delivery.started_at or utcnow()
            delivery.sent_clinic = delivery.sent_clinic or _clinic_as_sent(delivery)  # in the same UPDATE
            _audit_send(delivery)
    except QuotaExceeded as refused:
        _refuse(delivery, refused, skipped)
        return False
    if not delivery.targeted and reservation.trimmed:
        return _end(
            delivery,
            DeliveryStatus.REFUSED,
            f"今月の送信可能数が残っていないため、誰にも送信していません（通数上限で {reservation.trimmed:,} 人を除外）",
        )
    return True


def _end(delivery: Delivery, status: str, reason: str) -> bool:
    delivery.status, delivery.stop_reason, delivery.finished_at = status, reason, utcnow()
    db.session.commit()
    return False


def _refuse(delivery: Delivery, refused: QuotaExceeded, skipped: dict) -> None:
    delivery = db.session.get(Delivery, delivery.id)
    delivery.skipped = {**skipped, "over_quota": refused.needed}
    audit.record(
        "delivery.refused",
        clinic_id=delivery.clinic_id,
        target_type="delivery",
        target_id=delivery.id,
        details={"needed": refused.needed, "remaining": refused.remaining, "limit": refused.limit},
        actor_email=delivery.created_by_email,
    )
    _end(delivery, DeliveryStatus.REFUSED, str(refused))


def _audit_send(delivery: Delivery) -> None:
    audit.record(
        "delivery.send",
        clinic_id=delivery.clinic_id,
        target_type="delivery",
        target_id=delivery.id,
        details={
            "kind": delivery.kind,
            "title": delivery.title,
            "recipients": delivery.targeted,
            "skipped": delivery.skipped,
            "segment": delivery.segment,
            "by": delivery.created_by_email,
            "resend_of": delivery.resend_of_id,
        },
        actor_email=delivery.created_by_email,
    )


def _plan_batch(delivery: Delivery) -> list[int]:
    """Plan the next batch of friends in one transaction; [] when the plan is complete or stopped."""
    left = delivery.targeted - delivery.planned
    if left <= 0:
        return []
    size = min(int(setting("DELIVERY_PLAN_BATCH", PLAN_BATCH)), left)
    if delivery.sent_clinic is None:  # a plan begun before deliveries kept their clinic values
        delivery.sent_clinic = _clinic_as_sent(delivery)
    after, next_seq = db.session.execute(
        sa.select(
            sa.func.coalesce(sa.func.max(DeliveryChunk.last_friend_id), 0),
            sa.func.coalesce(sa.func.max(DeliveryChunk.seq) + 1, 0),
        ).where(DeliveryChunk.delivery_id == delivery.id)
    ).one()
    if delivery.resend_of_id:
        from saas.delivery.resend import plan_copy

        chunk_ids, count = plan_copy(delivery, next_seq)
    elif _is_personalised(delivery.messages) or delivery.kind == "push" or _tracks_per_friend(delivery):
        chunk_ids, count = _plan_personalised(delivery, after, size, next_seq)
    else:
        chunk_ids, count = _plan_shared(delivery, after, size, next_seq)
    return chunk_ids if _count_batch(delivery, count) else []


def _clinic_as_sent(delivery: Delivery) -> dict:
    """The {{clinic.*}} values this send renders (a resend's are its original's)."""
    original = db.session.get(Delivery, delivery.resend_of_id) if delivery.resend_of_id else None
    if original is not None and original.sent_clinic:
        return dict(original.sent_clinic)
    return clinic_context(db.session.get(Clinic, delivery.clinic_id))


def _count_batch(delivery: Delivery, count: int) -> bool:
    """Add the batch to the progress and commit it, unless the delivery was cancelled meanwhile."""
    if not count:
        db.session.rollback()
        return False
    changed = db.session.execute(
        sa.update(Delivery)
        .where(Delivery.id == delivery.id, Delivery.status == DeliveryStatus.PLANNING)
        .values(planned=Delivery.planned + count, updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    if changed.rowcount != 1:
        db.session.rollback()
        return False
    db.session.commit()
    set_committed_value(delivery, "planned", delivery.planned + count)  # what the UPDATE wrote
    return True


def _is_personalised(messages: list[dict]) -> bool:
    return any(name.startswith(PER_RECIPIENT_PREFIXES) for name in variables_in(messages))


def _tracks_per_friend(delivery: Delivery) -> bool:
    """Links counted per recipient: each friend's own codes, so a personalised push each (saas.links)."""
    if not delivery.track_clicks_per_friend or delivery.kind == "urgent":  # an urgent notice: speed first
        return False
    return bool(_clinic_links(delivery))


def _clinic_links(delivery: Delivery) -> frozenset[str]:
    """The URLs the clinic wrote: the template's with clinic values only, before any friend's are filled in."""
    return frozenset(links_in(render(delivery.messages, clinic_context(db.session.get(Clinic, delivery.clinic_id)))))


def _eligible_conditions(delivery: Delivery, after: int) -> list:
    return [
        Friend.clinic_id == delivery.clinic_id,
        Friend.id > after,
        Friend.status == FriendStatus.FOLLOWING,
        *audience.audience_filters(delivery.kind, delivery.segment, delivery.friend_id),
    ]


def _eligible(delivery: Delivery, after: int):
    columns = (Friend.id, Friend.line_user_id, Friend.display_name)
    return sa.select(*columns).where(*_eligible_conditions(delivery, after)).order_by(Friend.id)


def _plan_shared(delivery: Delivery, after: int, size: int, next_seq: int) -> tuple[list[int], int]:
    """One rendering for everybody: the batch's friends cut into chunks of 500.

    On Postgres one ``INSERT … SELECT`` does it in the database (the friend ids never travel to
    Python and back: a 100,000-friend plan is two statements); elsewhere one query for the ids and
    one multi-row insert.
    """
    clinic = db.session.get(Clinic, delivery.clinic_id)
    rendered = ensure_valid(render(delivery.messages, clinic_context(clinic)))
    (messages,) = links.track_shared(delivery.clinic_id, delivery.id, [rendered])  # one code per URL
    if db.engine.dialect.name == "postgresql":
        return _insert_chunks_in_database(delivery, after, size, next_seq, messages)
    friend_ids = db.session.scalars(
        sa.select(Friend.id).where(*_eligible_conditions(delivery, after)).order_by(Friend.id).limit(size)
    ).all()
    chunks = [
        multicast_chunk(delivery, next_seq + n, messages, friend_ids[start : start + CHUNK_SIZE])
        for n, start in enumerate(range(0, len(friend_ids), CHUNK_SIZE))
    ]
    db.session.add_all(chunks)
    db.session.flush()  # one multi-row INSERT … RETURNING id
    return [chunk.id for chunk in chunks], len(friend_ids)


def _insert_chunks_in_database(
    delivery: Delivery, after: int, size: int, next_seq: int, messages: list[dict]
) -> tuple[list[int], int]:
    """The batch's chunks by ``INSERT … SELECT``: friends numbered in id order, grouped by 500 (Postgres)."""
    batch = (
        sa.select(Friend.id, ((sa.func.row_number().over(order_by=Friend.id) - 1) // CHUNK_SIZE).label("n"))
        .where(*_eligible_conditions(delivery, after))
        .order_by(Friend.id)
        .limit(size)
        .subquery()
    )
    now = utcnow()
    columns = {
        "clinic_id": sa.literal(delivery.clinic_id),
        "delivery_id": sa.literal(delivery.id),
        "seq": batch.c.n + next_seq,
        "mode": sa.literal("multicast"),
        "messages": sa.literal(messages, DeliveryChunk.messages.type),
        "size": sa.func.count(),
        "friend_ids": sa.func.json_agg(aggregate_order_by(batch.c.id, batch.c.id)),
        "last_friend_id": sa.func.max(batch.c.id),
        "retry_key": sa.cast(sa.func.gen_random_uuid(), sa.String),
        "status": sa.literal(ChunkStatus.PENDING),
        "attempts": sa.literal(0),
        "sent": sa.literal(0),
        "failed": sa.literal(0),
        "skip_reason": sa.literal(""),
        "last_error": sa.literal(""),
        "unanswered": sa.literal(False),
        "created_at": sa.literal(now),
        "updated_at": sa.literal(now),
    }
    rows = db.session.execute(
        sa.insert(DeliveryChunk)
        .from_select(list(columns), sa.select(*columns.values()).group_by(batch.c.n).order_by(batch.c.n))
        .returning(DeliveryChunk.id, DeliveryChunk.size)
    ).all()
    return [row.id for row in sorted(rows)], sum(row.size for row in rows)


def _plan_personalised(delivery: Delivery, after: int, size: int, next_seq: int) -> tuple[list[int], int]:
    """Per-friend variables: friends grouped by their rendering (multicast per group, push for singles)."""
    friends = [audience.Candidate(*row) for row in db.session.execute(_eligible(delivery, after).limit(size))]
    if not friends:
        return [], 0
    clinic = db.session.get(Clinic, delivery.clinic_id)
    groups = group_recipients_by_rendering(delivery.messages, clinic, friends)
    if _tracks_per_friend(delivery):
        planned = _tracked_pushes(delivery, groups, next_seq)
    else:
        planned = _grouped(delivery, groups, next_seq)
    insert_chunks(delivery, planned)
    return [chunk.id for chunk, _ in planned], len(friends)


def _grouped(delivery: Delivery, groups: list, next_seq: int) -> list[tuple[DeliveryChunk, list[dict]]]:
    """Multicast per group of identical renderings, a push for each friend with a rendering of their own."""
    only = _clinic_links(delivery)
    origins = [links.friend_origin(group.friends[0], only) for group in groups]  # a group: one rendering
    tracked = links.track_shared(delivery.clinic_id, delivery.id, [group.messages for group in groups], origins)
    groups = [group._replace(messages=messages) for group, messages in zip(groups, tracked, strict=True)]
    planned: list[tuple[DeliveryChunk, list[dict]]] = []
    for group in (g for g in groups if not g.needs_push):
        ids = sorted(friend.id for friend in group.friends)
        for start in range(0, len(ids), CHUNK_SIZE):
            chunk = multicast_chunk(delivery, next_seq + len(planned), group.messages, ids[start : start + CHUNK_SIZE])
            planned.append((chunk, []))
    singles = [g for g in groups if g.needs_push]
    for start in range(0, len(singles), CHUNK_SIZE):
        members = singles[start : start + CHUNK_SIZE]
        chunk = new_chunk(delivery, next_seq + len(planned), "push", [], len(members))
        chunk.last_friend_id = max(g.friends[0].id for g in members)
        planned.append((chunk, [recipient_row(g.friends[0], g.messages) for g in members]))
    return planned


def _tracked_pushes(delivery: Delivery, groups: list, next_seq: int) -> list[tuple[DeliveryChunk, list[dict]]]:
    """Every friend a push of their own rendering, its URLs as their own short links (codes in bulk)."""
    renderings = sorted(
        ((friend, group.messages) for group in groups for friend in group.friends), key=lambda pair: pair[0].id
    )
    tracked = links.track_per_friend(delivery.clinic_id, delivery.id, renderings, _clinic_links(delivery))
    planned: list[tuple[DeliveryChunk, list[dict]]] = []
    for start in range(0, len(renderings), CHUNK_SIZE):
        members = list(zip(renderings[start : start + CHUNK_SIZE], tracked[start : start + CHUNK_SIZE], strict=True))
        chunk = new_chunk(delivery, next_seq + len(planned), "push", [], len(members))
        chunk.last_friend_id = members[-1][0][0].id
        planned.append((chunk, [recipient_row(friend, messages) for (friend, _), messages in members]))
    return planned


def insert_chunks(delivery: Delivery, planned: list[tuple[DeliveryChunk, list[dict]]]) -> None:
    """Chunks and the recipient rows of their pushes, in the current transaction (multi-row inserts)."""
    db.session.add_all([chunk for chunk, _ in planned])
    db.session.flush()
    rows = [
        {**row, "chunk_id": chunk.id, "delivery_id": delivery.id, "clinic_id": delivery.clinic_id}
        for chunk, members in planned
        for row in members
    ]
    if rows:
        db.session.execute(sa.insert(DeliveryRecipient), rows)


def multicast_chunk(delivery: Delivery, seq: int, messages: list[dict], friend_ids: list[int], **fields):
    """A pending multicast chunk to ``friend_ids`` (ascending, at most 500)."""
    return new_chunk(
        delivery, seq, "multicast", messages, len(friend_ids), friend_ids=list(friend_ids),
        last_friend_id=friend_ids[-1], **fields,
    )  # fmt: skip


def new_chunk(delivery: Delivery, seq: int, mode: str, messages: list[dict], size: int, **fields) -> DeliveryChunk:
    """A pending chunk whose retry key is fixed before its first call."""
    return DeliveryChunk(
        clinic_id=delivery.clinic_id,
        delivery_id=delivery.id,
        seq=seq,
        mode=mode,
        messages=messages,
        size=size,
        retry_key=fields.pop("retry_key", None) or str(uuid.uuid4()),
        status=ChunkStatus.PENDING,
        **fields,
    )


def recipient_row(friend: audience.Candidate, messages: list[dict] | None, retry_key: str | None = None) -> dict:
    """A recipient row; personalised pushes carry their own rendering and retry key."""
    return {
        "friend_id": friend.id,
        "line_user_id": friend.line_user_id,
        "messages": messages,
        "retry_key": retry_key or (str(uuid.uuid4()) if messages is not None else None),
        "status": ChunkStatus.PENDING,
        "error": "",
    }


def _planning_done(delivery_id: int) -> None:
    """PLANNING → SENDING with the target as planned (friends who left meanwhile are not counted)."""
    db.session.execute(
        sa.update(Delivery)
        .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.PLANNING)
        .values(status=DeliveryStatus.SENDING, targeted=Delivery.planned, updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    from saas.delivery.services import finish_if_complete

    finish_if_complete(delivery_id)


def enqueue_chunks(delivery: Delivery, chunk_ids: list[int]) -> None:
    """One RQ job per chunk; when Redis is away the sweeper enqueues them later (the rows remain)."""
    from saas.delivery.jobs import send_chunk
    from saas.queues import get_queue

    if delivery.kind == "urgent" or not chunk_ids:
        return  # urgent chunks are sent by the planning job itself (one hop)
    queue = get_queue(delivery.queue_name)
    jobs = [
        queue.prepare_data(
            send_chunk, args=(chunk_id, delivery.clinic_id), job_id=f"delivery-chunk-{chunk_id}-0", result_ttl=600
        )
        for chunk_id in chunk_ids
    ]
    with contextlib.suppress(redis.RedisError, OSError):
        for start in range(0, len(jobs), 1000):
            queue.enqueue_many(jobs[start : start + 1000])
