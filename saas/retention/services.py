"""Purging what outlives its use, per clinic, in bounded batches; message bodies archived first.

- webhook events: the raw LINE payloads; once handled they only serve debugging (the message
  rows keep the content). Default 30 days; events still pending or being handled are kept.
- delivery recipients: per-friend send bookkeeping of finished deliveries; the delivery keeps
  its counts. Default 180 days after the delivery finished.
- message receipts and link clicks: who received which send and which link they tapped; kept as
  long as the delivery recipients (the same clinic setting), counted from the send or the tap.
  The analytics roll-ups keep their counts.
- message bodies: kept forever unless the clinic sets a period, never less than five years
  (診療録, 医師法第24条); the rows stay (who, when, which way), text and payload are archived
  to ``RETENTION_ARCHIVE_DIR`` as gzip JSON lines and then blanked.
See ``saas/retention/README.md``.
"""

from __future__ import annotations

import gzip
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from flask import current_app
from rq.timeouts import JobTimeoutException

from saas.common import MAX_DAYS, clinic_row, utcnow
from saas.delivery.models import FINAL_STATUSES, Delivery, DeliveryChunk, DeliveryRecipient
from saas.extensions import db
from saas.friends.models import Message
from saas.links.models import LinkClick
from saas.receipts.models import FriendReceipt
from saas.retention.models import MESSAGE_BODY_MIN_DAYS, RetentionPolicy
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope
from saas.webhooks.models import EventState, WebhookEvent

log = logging.getLogger(__name__)
BATCH = 5_000  # rows per statement: short transactions, no long locks on busy tables
ARCHIVED_MARK = {"archived": True}


@dataclass
class Purged:
    webhook_events: int = 0
    delivery_recipients: int = 0
    message_bodies: int = 0
    message_receipts: int = 0
    link_clicks: int = 0
    archives: list[str] = field(default_factory=list)


def policy_for(clinic_id: int) -> RetentionPolicy:
    """The clinic's retention settings (created with the defaults on first use)."""
    return clinic_row(RetentionPolicy, clinic_id)


_NO_SYNC = {"synchronize_session": False}


def _in_batches(select_ids: sa.Select, apply) -> int:
    """Run ``apply(ids)`` on successive batches of ids until none are left; commits each batch."""
    total = 0
    while ids := list(db.session.scalars(select_ids.limit(BATCH))):
        apply(ids)
        db.session.commit()
        total += len(ids)
        if len(ids) < BATCH:
            break
    return total


def purge_webhook_events(policy: RetentionPolicy, now: datetime) -> int:
    cutoff = now - timedelta(days=policy.webhook_event_days)
    done = WebhookEvent.state.in_([EventState.HANDLED, EventState.FAILED])
    old = sa.select(WebhookEvent.id).where(WebhookEvent.received_at < cutoff, done).order_by(WebhookEvent.id)
    return _in_batches(old, _delete_events)


def _delete_events(ids: list[int]) -> None:
    # The messages stay; their link to the raw event goes (explicitly: SQLite may not enforce the FK).
    unlink = sa.update(Message).where(Message.webhook_event_id.in_(ids)).values(webhook_event_id=None)
    db.session.execute(unlink.execution_options(synchronize_session=False))
    db.session.execute(sa.delete(WebhookEvent).where(WebhookEvent.id.in_(ids)))


def purge_delivery_recipients(policy: RetentionPolicy, now: datetime) -> int:
    cutoff = now - timedelta(days=policy.delivery_recipient_days)
    finished = sa.select(Delivery.id).where(Delivery.status.in_(FINAL_STATUSES), Delivery.finished_at < cutoff)
    old = (
        sa.select(DeliveryRecipient.id)
        .where(DeliveryRecipient.delivery_id.in_(finished))
        .order_by(DeliveryRecipient.id)
    )
    delete = lambda ids: db.session.execute(sa.delete(DeliveryRecipient).where(DeliveryRecipient.id.in_(ids)))  # noqa: E731
    purged = _in_batches(old, delete)
    return purged + _forget_chunk_recipients(finished)


def _forget_chunk_recipients(finished) -> int:
    """Multicast chunks keep their counts and lose the list of who they went to (returns how many)."""
    held = (
        DeliveryChunk.delivery_id.in_(finished),
        DeliveryChunk.mode == "multicast",
        DeliveryChunk.last_friend_id.is_not(None),  # None: forgotten already
    )
    recipients = db.session.scalar(sa.select(sa.func.coalesce(sa.func.sum(DeliveryChunk.size), 0)).where(*held))
    forget = sa.update(DeliveryChunk).values(friend_ids=[], last_friend_id=None)
    _in_batches(
        sa.select(DeliveryChunk.id).where(*held).order_by(DeliveryChunk.id),
        lambda ids: db.session.execute(forget.where(DeliveryChunk.id.in_(ids)), execution_options=_NO_SYNC),
    )
    return int(recipients)


def _purge_older(model, moment, cutoff: datetime) -> int:
    """Delete the clinic's rows whose ``moment`` is before ``cutoff`` (a range on ``(clinic_id, moment)``)."""
    old = sa.select(model.id).where(moment < cutoff).order_by(moment, model.id)
    return _in_batches(
        old, lambda ids: db.session.execute(sa.delete(model).where(model.id.in_(ids)), execution_options=_NO_SYNC)
    )


def purge_message_receipts(policy: RetentionPolicy, now: datetime) -> int:
    cutoff = now - timedelta(days=policy.delivery_recipient_days)
    return _purge_older(FriendReceipt, FriendReceipt.sent_at, cutoff)


def purge_link_clicks(policy: RetentionPolicy, now: datetime) -> int:
    cutoff = now - timedelta(days=policy.delivery_recipient_days)
    return _purge_older(LinkClick, LinkClick.clicked_at, cutoff)


def _archive_path(clinic: Clinic, now: datetime) -> Path:
    folder = Path(current_app.config["RETENTION_ARCHIVE_DIR"]) / clinic.slug
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"messages-{now:%Y%m%d-%H%M%S}.jsonl.gz"


def _archive_and_blank(path: Path, messages: list[Message]) -> None:
    with gzip.open(path, "at", encoding="utf-8") as archive:
        for message in messages:
            record = {
                "id": message.id,
                "friend_id": message.friend_id,
                "direction": message.direction,
                "kind": message.kind,
                "created_at": message.created_at.isoformat(),
                "text": message.text,
                "payload": message.payload,
            }
            archive.write(json.dumps(record, ensure_ascii=False) + "\n")
    db.session.execute(
        sa.update(Message)
        .where(Message.id.in_([m.id for m in messages]))
        .values(text="", payload=ARCHIVED_MARK)
        .execution_options(synchronize_session=False)
    )


def purge_message_bodies(clinic: Clinic, policy: RetentionPolicy, now: datetime) -> tuple[int, str | None]:
    """Archive then blank the bodies between the last run's cutoff and this one's (a range scan)."""
    if not policy.message_body_days:
        return 0, None
    cutoff = now - timedelta(days=min(max(policy.message_body_days, MESSAGE_BODY_MIN_DAYS), MAX_DAYS))
    since = policy.message_bodies_archived_before
    if since is not None and since >= cutoff:
        return 0, None
    window = [Message.created_at < cutoff] + ([Message.created_at >= since] if since else [])
    path, count, last_id = _archive_path(clinic, now), 0, 0
    while batch := list(
        db.session.scalars(sa.select(Message).where(*window, Message.id > last_id).order_by(Message.id).limit(BATCH))
    ):
        _archive_and_blank(path, batch)
        db.session.commit()
        count, last_id = count + len(batch), batch[-1].id
    policy.message_bodies_archived_before = cutoff
    db.session.commit()
    return count, str(path) if count else None


def purge_clinic(clinic: Clinic, now: datetime | None = None) -> Purged:
    """Apply the clinic's retention settings once (safe to run again: it finds nothing new)."""
    now = now or utcnow()
    with tenant_scope(clinic.id):
        policy = policy_for(clinic.id)
        db.session.commit()
        bodies, archive = purge_message_bodies(clinic, policy, now)
        return Purged(
            webhook_events=purge_webhook_events(policy, now),
            delivery_recipients=purge_delivery_recipients(policy, now),
            message_bodies=bodies,
            message_receipts=purge_message_receipts(policy, now),
            link_clicks=purge_link_clicks(policy, now),
            archives=[archive] if archive else [],
        )


class PurgeIncomplete(RuntimeError):
    """Some clinics' purge failed (each logged with its traceback); the others' was done."""

    def __init__(self, failed: list[int], done: Purged):
        super().__init__(f"retention purge failed for clinic(s) {', '.join(map(str, failed))}; the others were purged")
        self.failed, self.done = failed, done


def purge_all(now: datetime | None = None) -> Purged:
    """Every clinic in turn; the totals. One clinic's failure (an archive it cannot write, say) is
    logged and the others are still purged; then ``PurgeIncomplete`` names the failed ones, so the
    job fails, is retried and shows in RQ's failed jobs."""
    with platform_scope("retention purge visits every clinic"):
        clinic_ids = list(db.session.scalars(sa.select(Clinic.id).order_by(Clinic.id)))
    total, failed = Purged(), []
    for clinic_id in clinic_ids:
        try:
            with platform_scope("retention purge loads the clinic"):
                clinic = db.session.get(Clinic, clinic_id)
            _add(total, purge_clinic(clinic, now))
        except JobTimeoutException:  # RQ's job timeout ends the whole job, not one clinic's part
            raise
        except Exception:
            db.session.rollback()
            log.exception("retention purge failed for clinic %s", clinic_id)
            failed.append(clinic_id)
    if failed:
        raise PurgeIncomplete(failed, total)
    return total


def _add(total: Purged, done: Purged) -> None:
    total.webhook_events += done.webhook_events
    total.delivery_recipients += done.delivery_recipients
    total.message_bodies += done.message_bodies
    total.message_receipts += done.message_receipts
    total.link_clicks += done.link_clicks
    total.archives += done.archives
