"""API: create deliveries (through saas.delivery's services, with an Idempotency-Key) and read progress."""

from __future__ import annotations

from datetime import UTC

import sqlalchemy as sa

from saas import billing
from saas.api import paging
from saas.api.blueprint import api_actor, api_bp
from saas.api.idempotency import run_once
from saas.api.problems import ApiProblem
from saas.api.schemas import DeliveryIn, DeliveryOut, DeliveryPage, PageQuery
from saas.api.spec import operation
from saas.common import utcnow
from saas.delivery import services as deliveries
from saas.delivery import urgent  # noqa: F401  (urgent notices start on commit)
from saas.delivery.describe import clinic_values_as_sent, with_clinic_values
from saas.delivery.models import Delivery, DeliveryStatus
from saas.extensions import db
from saas.messaging.objects import validate_messages
from saas.messaging.variables import check_variables


def delivery_out(delivery: Delivery) -> DeliveryOut:
    if delivery.status == DeliveryStatus.SENDING:
        deliveries.refresh_counts(delivery)
    return DeliveryOut(
        id=delivery.id,
        kind=delivery.kind,
        title=with_clinic_values(delivery.title, clinic_values_as_sent(delivery)),  # as sent; friend variables stay
        status=delivery.status,
        scheduled_at=delivery.scheduled_at,
        targeted=delivery.targeted,
        planned=delivery.planned,
        sent=delivery.sent,
        failed=delivery.failed,
        skipped={k: int(v) for k, v in (delivery.skipped or {}).items()},
        percent=delivery.percent,
        stop_reason=delivery.stop_reason or "",
        created_at=delivery.created_at,
        finished_at=delivery.finished_at,
    )


def _messages(body: DeliveryIn) -> list[dict]:
    return [message.model_dump() for message in body.messages]


def _problems(messages: list[dict]) -> list[dict]:
    found = [*validate_messages(messages), *check_variables(messages)]
    return [{"in": "body", "pointer": f"/messages/{p.path}", "detail": p.message} for p in found]


def _scheduled_at(body: DeliveryIn):
    if body.scheduled_at is None:
        return None
    if body.scheduled_at.tzinfo is None:
        raise ApiProblem(422, "scheduled_at needs a time-zone offset (e.g. +09:00).")
    when = body.scheduled_at.astimezone(UTC).replace(tzinfo=None)
    if when < utcnow():
        raise ApiProblem(422, "scheduled_at is in the past.")
    return when


def _create(body: DeliveryIn) -> tuple[dict, int]:
    messages = _messages(body)
    problems = _problems(messages)
    if problems:
        raise ApiProblem(422, "The messages are not valid LINE messages.", errors=problems)
    if body.kind == "segment" and body.segment is None:
        raise ApiProblem(422, "A segment delivery needs `segment`.")
    delivery = deliveries.create_delivery(
        messages=messages,
        kind=body.kind,
        title=body.title.strip(),
        segment=body.segment.model_dump(mode="json", exclude_defaults=True) if body.segment else {},
        allow_trim=body.allow_trim,
        scheduled_at=_scheduled_at(body),
        actor=api_actor(),
    )
    if _held_by_the_guard(delivery, messages):
        return delivery_out(delivery).model_dump(mode="json"), 202
    try:
        deliveries.submit(delivery)
    except deliveries.QueueUnavailable as error:
        raise ApiProblem(503, "The send queue is unreachable; nothing was created.") from error
    except billing.MarketingPaused:
        pass  # the delivery ended refused, with billing's reason: the answer shows it
    return delivery_out(delivery).model_dump(mode="json"), 202


def _held_by_the_guard(delivery: Delivery, messages: list[dict]) -> bool:
    """The mis-send guard applies to API sends as to the portal's: a big send, a fresh segment or a
    block-level 医療広告 finding waits (status ``pending_approval``) for a staff member's approval.
    True when the delivery must not be submitted now (held, or refused because billing paused marketing)."""
    from saas.adcheck import services as adcheck
    from saas.delivery import audience
    from saas.sendguard import guard
    from saas.tenancy.models import Clinic

    findings = adcheck.check_messages(db.session.get(Clinic, delivery.clinic_id), messages)
    count = audience.count_audience(delivery.kind, delivery.segment, delivery.friend_id).eligible
    verdict = guard.assess(delivery.clinic_id, delivery.kind, delivery.segment, count, findings)
    if not verdict.held:
        return False
    if deliveries.refused_for_billing(delivery, deliveries.PAUSED_AT_SUBMIT):
        return True  # ended refused, with billing's reason: nothing to approve
    guard.hold(delivery, verdict, findings, api_actor())
    return True


@operation(
    api_bp,
    "POST",
    "/clinics/<clinic_slug>/deliveries",
    summary="Create a delivery",
    tag="deliveries",
    permission="messages.send",
    body=DeliveryIn,
    response=DeliveryOut,
    status=202,
    idempotency="required",
    errors=(409, 503),
)
def create_delivery(clinic_slug: str, body: DeliveryIn):
    """Start (or schedule) a send through the clinic's own channel, quota and rate limit.

    The quota is reserved when the delivery is planned: a send the plan cannot afford ends
    `refused` with nothing sent (or is trimmed with `allow_trim`). Poll the delivery for progress.
    A send to more friends than the clinic's approval threshold, to a segment whose tags or fields
    changed minutes ago, or with a block-level 医療広告ガイドライン finding answers `pending_approval`:
    it starts when a staff member approves it in the portal (配信の承認).
    """
    return run_once(lambda: _create(body), required=True)


@operation(
    api_bp,
    "GET",
    "/clinics/<clinic_slug>/deliveries",
    summary="List deliveries",
    tag="deliveries",
    permission="messages.send",
    query=PageQuery,
    response=DeliveryPage,
)
def list_deliveries(clinic_slug: str, query: PageQuery):
    """The clinic's deliveries, newest first."""
    statement = sa.select(Delivery).where(Delivery.status != DeliveryStatus.DRAFT)
    rows, cursor = paging.page(statement, Delivery.id, query, descending=True)
    return DeliveryPage(data=[delivery_out(d) for d in rows], next_cursor=cursor)


@operation(
    api_bp,
    "GET",
    "/clinics/<clinic_slug>/deliveries/<int:delivery_id>",
    summary="Get a delivery's progress",
    tag="deliveries",
    permission="messages.send",
    response=DeliveryOut,
)
def get_delivery(clinic_slug: str, delivery_id: int):
    """Status and counts: targeted, planned, sent, failed, skipped by reason."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None or delivery.status == DeliveryStatus.DRAFT:
        raise ApiProblem(404, "No such delivery in this clinic.")
    return delivery_out(delivery)
