"""Aggregation units (``customAggregationUnits``): which name a delivery's requests carry.

LINE keeps push/multicast statistics per unit name (``^[a-zA-Z0-9_]{1,30}$``, case-sensitive,
at most one per multicast request) and allows a limited number of unit names a month
(``INSIGHT_UNITS_PER_MONTH``, 1,000). A scenario step keeps one name for all its sends
(``step_<id>``), a segment one per set of conditions (``seg_<hash>``, the same conditions
sent again add up), and a broadcast or urgent notice one of its own (``dlv_<id>``), since our
broadcasts go out as multicasts, which LINE's per-request statistics do not cover. 1:1 pushes
carry none. When the month's names are used up, sends go out without one (and say so in the log).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from saas.common import JAPAN, to_local, utcnow
from saas.delivery.models import Delivery, DeliveryKind
from saas.extensions import db
from saas.insights.models import InsightUnit
from saas.line.errors import LineRequestRejected
from saas.queues import get_redis
from saas.steps.models import StepSend

log = logging.getLogger(__name__)
UNITS_PER_MONTH = 1000
REFUSAL_SECONDS = 7 * 86400  # a channel that refused units is asked again a week later
FRESH = timedelta(minutes=10)  # last use is written at most this often (not once per chunk)
REGISTERED_SECONDS = 60.0  # a process trusts a unit it registered for this long (well inside FRESH)
_registered: dict[tuple, tuple[str, float]] = {}  # (delivery id, created_at, month) -> (name, when)
T = TypeVar("T")


def month_of(moment: datetime) -> str:
    """The Japan month (``yyyyMM``) of a stored UTC time: LINE counts unit names per month."""
    return to_local(moment, JAPAN).strftime("%Y%m")


def segment_key(segment: dict) -> str:
    """The same conditions give the same key, whatever order they were stored in."""
    canonical = json.dumps(segment or {}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def step_of(delivery_id: int) -> tuple[int, int] | None:
    """(scenario id, step id) of a step delivery."""
    row = db.session.execute(
        sa.select(StepSend.scenario_id, StepSend.step_id).where(StepSend.delivery_id == delivery_id).limit(1)
    ).first()
    return (row.scenario_id, row.step_id) if row else None


def describe(delivery: Delivery) -> dict | None:
    """The unit a delivery's requests should carry, or None (1:1 pushes)."""
    if delivery.kind == DeliveryKind.PUSH:
        return None
    if delivery.kind == DeliveryKind.STEP:
        found = step_of(delivery.id)
        if found:
            return {"name": f"step_{found[1]}", "kind": "step", "scenario_id": found[0], "step_id": found[1]}
    if delivery.kind == DeliveryKind.SEGMENT:
        key = segment_key(delivery.segment)
        return {"name": f"seg_{key}", "kind": "segment", "segment_key": key}
    return {"name": f"dlv_{delivery.id}", "kind": "delivery", "delivery_id": delivery.id}


def send_with_unit(clinic, delivery_id: int, send: Callable[[str | None], T]) -> T:
    """``send(unit)`` with the delivery's unit; when LINE refuses the unit itself (units are for
    accounts that applied for them), the channel stops using units and the request goes again
    without one, with the same retry key (the refused request was not accepted)."""
    unit = None if _refuses_units(clinic) else unit_for(delivery_id)
    try:
        return send(unit)
    except LineRequestRejected as rejected:
        if not unit or not _about_units(rejected):
            raise
        get_redis().set(_refusal_key(clinic), "1", ex=REFUSAL_SECONDS)
        log.warning("LINE refused aggregation units for clinic %s: %s", clinic.id, rejected.message)
        return send(None)


def _refusal_key(clinic) -> str:
    return f"tsunagu:{{ch:{clinic.line_channel_id or clinic.id}}}:insight:no-units"


def _refuses_units(clinic) -> bool:
    return bool(get_redis().exists(_refusal_key(clinic)))


def _about_units(error: LineRequestRejected) -> bool:
    details = " ".join(str(d.get("property", "")) for d in error.details if isinstance(d, dict))
    return "customAggregationUnits" in f"{details} {error.message}"


def unit_for(delivery_id: int) -> str | None:
    """The unit name for this delivery's requests this month, registered in the month's ledger;
    None when it carries none or the month's names are used up. The ledger is read once per
    delivery and month in a process (then every ``REGISTERED_SECONDS``), not once per chunk."""
    delivery = db.session.get(Delivery, delivery_id)
    if delivery is None:
        return None
    month = month_of(utcnow())
    key = (delivery.id, delivery.created_at, month)  # created_at: a recreated database reuses ids
    known = _registered.get(key)
    if known and time.monotonic() - known[1] < REGISTERED_SECONDS:
        return known[0]
    wanted = describe(delivery)
    name = _register(delivery.clinic_id, month, wanted) if wanted else None
    if name:
        if len(_registered) >= 1024:
            _registered.clear()
        _registered[key] = (name, time.monotonic())
    return name


def first_sync_delay() -> timedelta:
    """How long after a send LINE's figures are first asked (``INSIGHT_FIRST_SYNC_MINUTES``)."""
    return timedelta(minutes=float(current_app.config.get("INSIGHT_FIRST_SYNC_MINUTES", 60)))


def _register(clinic_id: int, month: str, wanted: dict) -> str | None:
    now = utcnow()
    found = db.session.scalar(
        sa.select(InsightUnit).where(InsightUnit.month == month, InsightUnit.name == wanted["name"])
    )
    if found is not None:
        if now - found.last_used_at > FRESH:
            found.last_used_at = now
            found.next_sync_at = found.next_sync_at or now + first_sync_delay()
            db.session.commit()
        return found.name
    used = db.session.scalar(sa.select(sa.func.count(InsightUnit.id)).where(InsightUnit.month == month))
    cap = int(current_app.config.get("INSIGHT_UNITS_PER_MONTH", UNITS_PER_MONTH))
    if used >= cap:
        log.warning("clinic %s used its %s aggregation units of %s: %s sent without one", clinic_id, cap, month, wanted)
        return None
    try:
        with db.session.begin_nested():
            db.session.add(
                InsightUnit(
                    clinic_id=clinic_id, month=month, last_used_at=now, next_sync_at=now + first_sync_delay(), **wanted
                )
            )
        db.session.commit()
    except IntegrityError:  # registered by a concurrent chunk of the same delivery meanwhile
        pass
    return wanted["name"]
