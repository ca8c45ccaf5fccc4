"""Helpers: send through the pipeline, read a delivery's requests, run the insight jobs."""

from __future__ import annotations

import sqlalchemy as sa

from saas.delivery import services
from saas.delivery.models import DeliveryChunk
from saas.extensions import db
from saas.insights.models import DeliveryInsight
from saas.tenancy.scoping import tenant_scope
from tests.delivery.support import HELLO, drain

LINKED = [
    {
        "type": "template",
        "altText": "健診のご案内",
        "template": {
            "type": "buttons",
            "text": "今年の健診はお済みですか",
            "actions": [{"type": "uri", "label": "予約する", "uri": "https://clinic.example/book"}],
        },
    }
]


def send(clinic, messages=None, **fields) -> int:
    """A delivery submitted and sent to the end (in-process workers)."""
    fields.setdefault("track_clicks_per_friend", False)  # one multicast: LINE's per-request figures (saas.links)
    with tenant_scope(clinic.id):
        delivery = services.create_delivery(messages=messages or HELLO, **fields)
        services.submit(delivery)
        delivery_id = delivery.id
    drain()
    return delivery_id


def request_ids(clinic, delivery_id: int) -> list[str]:
    with tenant_scope(clinic.id):
        return list(
            db.session.scalars(
                sa.select(DeliveryChunk.request_id)
                .where(DeliveryChunk.delivery_id == delivery_id)
                .order_by(DeliveryChunk.seq)
            )
        )


def insight_of(clinic, delivery_id: int) -> DeliveryInsight | None:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return db.session.scalar(sa.select(DeliveryInsight).where(DeliveryInsight.delivery_id == delivery_id))


def run_sync() -> None:
    """What the cron does every 10 minutes, then the per-clinic jobs it enqueued."""
    from saas.insights.jobs import sync_insights

    sync_insights()
    drain()
