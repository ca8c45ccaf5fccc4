"""What the portal reads (current tenant scope): per delivery, per step, per segment, per day.

Every function reads the tables the jobs maintain (a few rows per delivery, indexed by clinic),
never raw events. Counts LINE withheld are None, never 0: show them with :data:`WITHHELD_NOTE`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l

from saas.common import utcnow
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.insights.models import (
    BlockAttribution,
    DeliveryInsight,
    InsightDaily,
    InsightDemographic,
    InsightUnit,
)
from saas.insights.units import month_of

WITHHELD_NOTE = _l("20人未満などの理由で LINE が公開していない数値です（LINE のプライバシー保護）")
PENDING_NOTE = _l("LINE の統計は配信の少し後から集計されます。しばらくしてからご覧ください。")
PARTIAL_NOTE = _l("一部のリクエストの数値を LINE が公開していないため、実際はこれ以上です")


@dataclass(frozen=True)
class DeliveryStats:
    """One delivery's figures; LINE's are None when withheld, and ``synced`` False before any sync."""

    delivery_id: int
    reached: int
    synced: bool
    partial: bool
    delivered: int | None
    opens: int | None
    unique_opens: int | None
    unique_clicks: int | None
    media_played: int | None
    clicks: list[dict] = field(default_factory=list)  # [{url, clicks, unique_clicks}] from LINE
    blocks_24h: int = 0
    blocks_72h: int = 0
    synced_at: datetime | None = None
    unit: str | None = None


def _stats(row: DeliveryInsight | None, delivery_id: int) -> DeliveryStats:
    if row is None:
        return DeliveryStats(delivery_id, 0, False, False, None, None, None, None, None)
    return DeliveryStats(
        delivery_id=delivery_id,
        reached=row.reached,
        synced=row.requests_synced > 0,
        partial=row.partial,
        delivered=row.delivered,
        opens=row.impressions,
        unique_opens=row.unique_impressions,
        unique_clicks=row.unique_clicks,
        media_played=row.unique_media_played,
        clicks=list(row.clicks or []),
        blocks_24h=row.blocks_24h,
        blocks_72h=row.blocks_72h,
        synced_at=row.synced_at,
        unit=row.unit,
    )


def delivery_stats(delivery_id: int) -> DeliveryStats:
    """LINE's figures and the attributed blocks of one delivery (one indexed read)."""
    row = db.session.scalar(sa.select(DeliveryInsight).where(DeliveryInsight.delivery_id == delivery_id))
    return _stats(row, delivery_id)


def deliveries_stats(delivery_ids: list[int]) -> dict[int, DeliveryStats]:
    """:func:`delivery_stats` for a page of deliveries, in one read."""
    rows = db.session.scalars(sa.select(DeliveryInsight).where(DeliveryInsight.delivery_id.in_(delivery_ids or [0])))
    found = {row.delivery_id: row for row in rows}
    return {delivery_id: _stats(found.get(delivery_id), delivery_id) for delivery_id in delivery_ids}


@dataclass(frozen=True)
class Blocks:
    reached: int
    blocks_24h: int
    blocks_72h: int

    @property
    def rate_24h(self) -> float | None:
        return round(100 * self.blocks_24h / self.reached, 2) if self.reached else None

    @property
    def rate_72h(self) -> float | None:
        return round(100 * self.blocks_72h / self.reached, 2) if self.reached else None


def block_attribution(delivery_id: int) -> Blocks:
    """Blocks within 24 h / 72 h attributed to one delivery, and the recipients it reached."""
    row = db.session.scalar(sa.select(DeliveryInsight).where(DeliveryInsight.delivery_id == delivery_id))
    return Blocks(row.reached, row.blocks_24h, row.blocks_72h) if row else Blocks(0, 0, 0)


def _grouped(column, since: datetime | None, *where) -> dict:
    statement = sa.select(
        column,
        sa.func.count(DeliveryInsight.id),
        sa.func.coalesce(sa.func.sum(DeliveryInsight.reached), 0),
        sa.func.coalesce(sa.func.sum(DeliveryInsight.blocks_24h), 0),
        sa.func.coalesce(sa.func.sum(DeliveryInsight.blocks_72h), 0),
    ).where(column.is_not(None), *where)
    if since is not None:
        statement = statement.where(DeliveryInsight.sent_at >= since)
    rows = db.session.execute(statement.group_by(column)).all()
    return {key: {"deliveries": n, "blocks": Blocks(int(r), int(b24), int(b72))} for key, n, r, b24, b72 in rows}


def blocks_by_step(scenario_id: int | None = None, since: datetime | None = None) -> dict[int, dict]:
    """step id → {deliveries, blocks} over the step's sends (of one scenario, when given)."""
    where = [DeliveryInsight.scenario_id == scenario_id] if scenario_id else []
    return _grouped(DeliveryInsight.step_id, since, *where)


def blocks_by_segment(since: datetime | None = None) -> dict[str, dict]:
    """segment key (saas.insights.units.segment_key of the conditions) → {deliveries, blocks}."""
    return _grouped(DeliveryInsight.segment_key, since)


def unit_stats(name: str, month: str | None = None) -> InsightUnit | None:
    """LINE's figures for an aggregation unit over a month (this month unless given)."""
    return db.session.scalar(
        sa.select(InsightUnit).where(InsightUnit.name == name, InsightUnit.month == (month or month_of(utcnow())))
    )


def daily_figures(start: date, end: date) -> list[InsightDaily]:
    """LINE's followers / targeted reaches / blocks and deliveries per Japan day, oldest first."""
    return list(
        db.session.scalars(
            sa.select(InsightDaily).where(InsightDaily.day >= start, InsightDaily.day <= end).order_by(InsightDaily.day)
        )
    )


def latest_demographics() -> InsightDemographic | None:
    """The newest snapshot of LINE's friend demographics."""
    return db.session.scalar(sa.select(InsightDemographic).order_by(InsightDemographic.taken_on.desc()).limit(1))


def blocked_after(delivery_id: int) -> list[BlockAttribution]:
    """The blocks attributed to one delivery (for the analytics engineer's per-delivery report)."""
    return list(
        db.session.scalars(
            sa.select(BlockAttribution)
            .where(BlockAttribution.delivery_id == delivery_id)
            .order_by(BlockAttribution.blocked_at)
        )
    )


# --- the warning: recent sends push the block rate above the clinic's own baseline ----------------

RECENT = timedelta(days=14)
BASELINE = timedelta(days=90)  # the 90 days before the recent ones
RISE = 1.5  # recent rate above 1.5 × baseline …
MIN_RISE_POINTS = 0.5  # … and at least 0.5 percentage points above it
MIN_BLOCKS = 3  # and enough blocks to be more than chance


@dataclass(frozen=True)
class BlockWarning:
    recent_rate: float
    baseline_rate: float
    responsible: list[tuple[Delivery, Blocks]]


def block_warning(now: datetime | None = None) -> BlockWarning | None:
    """A warning when the clinic's block rate (72 h) over the last 14 days' sends rose above its
    own baseline (the 90 days before), naming the sends responsible; None otherwise. Two reads."""
    now = now or utcnow()
    recent_from, baseline_from = now - RECENT, now - RECENT - BASELINE
    is_recent = DeliveryInsight.sent_at >= recent_from
    sums = db.session.execute(
        sa.select(
            sa.func.coalesce(sa.func.sum(sa.case((is_recent, DeliveryInsight.reached), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((is_recent, DeliveryInsight.blocks_72h), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((is_recent, 0), else_=DeliveryInsight.reached)), 0),
            sa.func.coalesce(sa.func.sum(sa.case((is_recent, 0), else_=DeliveryInsight.blocks_72h)), 0),
        ).where(DeliveryInsight.sent_at >= baseline_from, DeliveryInsight.reached > 0)
    ).one()
    recent_reached, recent_blocks, base_reached, base_blocks = (int(v) for v in sums)
    if not recent_reached or not base_reached or recent_blocks < MIN_BLOCKS:
        return None
    recent, baseline = 100 * recent_blocks / recent_reached, 100 * base_blocks / base_reached
    if recent < baseline * RISE or recent - baseline < MIN_RISE_POINTS:
        return None
    return BlockWarning(round(recent, 2), round(baseline, 2), _responsible(recent_from, baseline))


def _responsible(since: datetime, baseline: float, limit: int = 3) -> list[tuple[Delivery, Blocks]]:
    rows = db.session.execute(
        sa.select(Delivery, DeliveryInsight)
        .join(DeliveryInsight, DeliveryInsight.delivery_id == Delivery.id)
        .where(DeliveryInsight.sent_at >= since, DeliveryInsight.blocks_72h > 0, DeliveryInsight.reached > 0)
        .order_by(DeliveryInsight.blocks_72h.desc(), DeliveryInsight.delivery_id.desc())
        .limit(20)
    ).all()
    above = [
        (delivery, Blocks(row.reached, row.blocks_24h, row.blocks_72h))
        for delivery, row in rows
        if 100 * row.blocks_72h / row.reached > baseline
    ]
    return above[:limit]
