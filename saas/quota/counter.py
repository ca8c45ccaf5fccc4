"""The running count of billable messages: atomic reservation, release and reconciliation.

Redis holds the live count per clinic and month and is the gate: one Lua script reads the
count, checks the plan's limit and adds the grant in a single step, so concurrent sends in
any number of processes can never overspend. The database (MessageUsage, MessageUsageDay,
QuotaReservation) is the durable record, updated with relative increments right after; when
the Redis key is missing (restart, eviction, new month) the script seeds it from the database.
Months and days are Japan time, as LINE counts them.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime

import redis
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from saas.common import JAPAN, utcnow
from saas.extensions import db
from saas.queues import get_redis
from saas.quota.models import MessageUsage, MessageUsageDay, QuotaReservation
from saas.quota.plans import plan_for_clinic
from saas.tenancy.scoping import TenantScopeError, current_scope

log = logging.getLogger(__name__)
JST = JAPAN  # months and days of the quota are Japan time
KEY_TTL_SECONDS = 40 * 24 * 3600

# KEYS[1] month counter, KEYS[2] the month's uncommitted grants; ARGV: count, limit (-1 = none),
# trim (1/0), seed from the database, ttl, token, now. Returns {1, granted, used_after} or
# {0, remaining, used} when refused. Redis 6.2-safe commands only.
_RESERVE = """
local used = tonumber(redis.call('GET', KEYS[1]))
if not used then
  used = tonumber(ARGV[4])
  redis.call('SET', KEYS[1], used)
end
local count, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local granted = count
if limit >= 0 then
  local remaining = math.max(limit - used, 0)
  if count > remaining then
    if ARGV[3] ~= '1' then return {0, remaining, used} end
    granted = remaining
  end
end
if granted > 0 then
  used = redis.call('INCRBY', KEYS[1], granted)
  redis.call('HSET', KEYS[2], ARGV[6], granted .. ':' .. ARGV[7])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
end
redis.call('EXPIRE', KEYS[1], ARGV[5])
return {1, granted, used}
"""
# KEYS[1] month counter, KEYS[2] uncommitted grants; ARGV[1] token. Gives an orphaned grant back, once.
_GIVE_BACK = """
local grant = redis.call('HGET', KEYS[2], ARGV[1])
if not grant then return 0 end
redis.call('HDEL', KEYS[2], ARGV[1])
local amount = tonumber(string.match(grant, '^(%d+)'))
local used = tonumber(redis.call('GET', KEYS[1]))
if used then redis.call('SET', KEYS[1], math.max(used - amount, 0), 'KEEPTTL') end
return amount
"""
# KEYS[1] month counter; ARGV[1] amount to add (negative to give back). Never below zero.
_ADJUST = """
local used = tonumber(redis.call('GET', KEYS[1]))
if not used then return -1 end
local target = math.max(used + tonumber(ARGV[1]), 0)
redis.call('SET', KEYS[1], target, 'KEEPTTL')
return target
"""


class QuotaExceeded(Exception):
    """The send needs more messages than the clinic's plan has left this month."""

    def __init__(self, needed: int, remaining: int, limit: int):
        self.needed, self.remaining, self.limit = needed, remaining, limit
        super().__init__(f"今月の送信可能数を超えます（必要 {needed:,}通 / 残り {remaining:,}通 / 上限 {limit:,}通）")


@dataclass(frozen=True)
class Reservation:
    """What a send was granted. Store ``as_dict()`` with the send; give back unused counts with release()."""

    id: int
    clinic_id: int
    month: str
    day: date
    requested: int
    granted: int
    remaining: int | None  # None: no limit of ours
    limit: int | None
    token: str | None = None  # the grant's mark in Redis until its row is committed

    @property
    def trimmed(self) -> int:
        """Recipients cut off because the plan had too few messages left."""
        return self.requested - self.granted

    def as_dict(self) -> dict:
        return {**asdict(self), "day": self.day.isoformat()}

    @classmethod
    def from_dict(cls, data: dict) -> Reservation:
        return cls(**{**data, "day": date.fromisoformat(data["day"])})


@dataclass(frozen=True)
class Reconciliation:
    ours_before: int
    line_total: int
    added: int
    limit_mismatch: bool = False  # LINE's monthly limit differs from our plan's: plan data is stale


def japan_now(now: datetime | None = None) -> datetime:
    """Now in Japan time; ``now`` may be given (naive = UTC) for jobs and tests."""
    moment = now or utcnow()
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(JST)


def month_key(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def _redis_key(clinic_id: int, month: str) -> str:
    return f"tsunagu:{{clinic:{clinic_id}}}:quota:{month}"  # hash tag: one Redis Cluster slot per clinic


def _grants_key(clinic_id: int, month: str) -> str:
    return f"tsunagu:{{clinic:{clinic_id}}}:quota-grants:{month}"  # same slot as the counter: one script uses both


_GRANTS_KEY = re.compile(r"tsunagu:\{clinic:(\d+)\}:quota-grants:(.+)")


def _require_scope(clinic_id: int) -> None:
    scope = current_scope()
    if scope is None or not (scope.is_platform or clinic_id in scope.clinic_ids):
        raise TenantScopeError(f"quota of clinic {clinic_id} used outside its tenant scope")


def durable_used(clinic_id: int, month: str) -> int:
    """The month's count as recorded in the database."""
    value = db.session.scalar(sa.select(MessageUsage.used).filter_by(clinic_id=clinic_id, month=month))
    return value or 0


def _ensure_row(model, **identity) -> None:
    if db.session.scalar(sa.select(model.id).filter_by(**identity)) is not None:
        return
    try:
        with db.session.begin_nested():
            db.session.add(model(**identity, used=0))
    except IntegrityError:
        pass  # another process created it first


def _add_durable(clinic_id: int, month: str, day: date, delta: int) -> None:
    """Relative increments, so concurrent writers never lose each other's counts."""
    for model, identity in ((MessageUsage, {"month": month}), (MessageUsageDay, {"day": day})):
        _ensure_row(model, clinic_id=clinic_id, **identity)
        db.session.execute(
            sa.update(model).filter_by(clinic_id=clinic_id, **identity).values(used=model.used + delta),
            execution_options={"synchronize_session": False},
        )


def reserve(
    clinic_id: int, count: int, *, allow_trim: bool = False, purpose: str = "", now: datetime | None = None
) -> Reservation:
    """Atomically reserve ``count`` billable messages this month before anything is sent.

    Raises :class:`QuotaExceeded` with the numbers when the plan has too few left, unless
    ``allow_trim`` (then ``granted`` may be less than ``count``, even 0). Commits.
    """
    with reserving(clinic_id, count, allow_trim=allow_trim, purpose=purpose, now=now) as reservation:
        return reservation


@contextlib.contextmanager
def reserving(
    clinic_id: int, count: int, *, allow_trim: bool = False, purpose: str = "", now: datetime | None = None
) -> Iterator[Reservation]:
    """Reserve like :func:`reserve`, committing the caller's rows in the same transaction.

    The grant is taken in Redis first (the gate) and marked there with a token until the
    reservation row is committed; if the block raises, or the process dies before the commit,
    the grant is given back (at once, or by :func:`give_back_orphaned_grants`).
    """
    if count < 0:
        raise ValueError("count must be >= 0")
    _require_scope(clinic_id)
    moment = japan_now(now)
    month, day, token = month_key(moment), moment.date(), str(uuid.uuid4())
    limit = plan_for_clinic(clinic_id).limit
    seed = durable_used(clinic_id, month)  # used only when Redis lost the month's key
    keys = (_redis_key(clinic_id, month), _grants_key(clinic_id, month))
    args = (count, -1 if limit is None else limit, int(allow_trim), seed, KEY_TTL_SECONDS, token, int(time.time()))
    ok, granted_or_remaining, used = get_redis().eval(_RESERVE, 2, *keys, *args)
    if not ok:
        raise QuotaExceeded(count, int(granted_or_remaining), limit)
    granted = int(granted_or_remaining)
    try:
        row = QuotaReservation(
            clinic_id=clinic_id, month=month, day=day, requested=count, granted=granted, purpose=purpose, token=token
        )
        db.session.add(row)
        _add_durable(clinic_id, month, day, granted)
        db.session.flush()
        remaining = None if limit is None else max(limit - int(used), 0)
        yield Reservation(row.id, clinic_id, month, day, count, granted, remaining, limit, token)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        with contextlib.suppress(redis.RedisError):
            get_redis().eval(_GIVE_BACK, 2, *keys, token)
        raise
    with contextlib.suppress(redis.RedisError):  # a mark left behind is cleared by the sweeper
        get_redis().hdel(keys[1], token)


def give_back_orphaned_grants(older_than_seconds: float = 60.0) -> int:
    """Give back Redis grants whose reservation row was never committed (a crash mid-reservation).

    Runs from the sweeper under the platform scope; returns how many messages were given back.
    """
    connection, cutoff, given = get_redis(), time.time() - older_than_seconds, 0
    for key in connection.scan_iter(match="tsunagu:{clinic:*}:quota-grants:*", count=500):
        clinic_id, month = _GRANTS_KEY.fullmatch(key.decode()).groups()
        for token, grant in connection.hgetall(key).items():
            if int(grant.decode().split(":")[1]) > cutoff:
                continue
            token = token.decode()
            if db.session.scalar(sa.select(QuotaReservation.id).where(QuotaReservation.token == token)):
                connection.hdel(key, token)  # committed; only the mark was left behind
                continue
            given += int(connection.eval(_GIVE_BACK, 2, _redis_key(int(clinic_id), month), key, token) or 0)
    return given


def release(reservation: Reservation, unused: int) -> None:
    """Give back messages a send reserved but did not use (skipped or failed recipients). Commits.

    Refuses (ValueError) to give back more than the reservation still holds.
    """
    if unused <= 0:
        return
    _require_scope(reservation.clinic_id)
    changed = db.session.execute(
        sa.update(QuotaReservation)
        .where(QuotaReservation.id == reservation.id, QuotaReservation.released + unused <= QuotaReservation.granted)
        .values(released=QuotaReservation.released + unused),
        execution_options={"synchronize_session": False},
    )
    if changed.rowcount != 1:
        db.session.rollback()
        raise ValueError(f"reservation {reservation.id} holds fewer than {unused} unreleased messages")
    _add_durable(reservation.clinic_id, reservation.month, reservation.day, -unused)
    db.session.commit()
    get_redis().eval(_ADJUST, 1, _redis_key(reservation.clinic_id, reservation.month), -unused)


def reconcile_with_line(
    clinic_id: int, line_used_total: int, *, line_limit: int | None = None, now: datetime | None = None
) -> Reconciliation:
    """Align this month's count with LINE's consumption figure (``quota/consumption``). Commits.

    When LINE counted more (messages sent from OA Manager, or lost counts), ours is raised
    to LINE's and the drift logged; when LINE counted fewer (blocked recipients are not
    billed, in-flight sends), ours is kept: over-counting only errs on the safe side.
    """
    _require_scope(clinic_id)
    moment = japan_now(now)
    month = month_key(moment)
    ours = durable_used(clinic_id, month)
    added = max(line_used_total - ours, 0)
    if added:
        log.warning(
            "quota drift clinic=%s month=%s ours=%s line=%s: raised to LINE's", clinic_id, month, ours, line_used_total
        )
        _add_durable(clinic_id, month, moment.date(), added)
    elif line_used_total != ours:
        log.info("quota drift clinic=%s month=%s ours=%s line=%s: kept ours", clinic_id, month, ours, line_used_total)
    _ensure_row(MessageUsage, clinic_id=clinic_id, month=month)
    db.session.execute(
        sa.update(MessageUsage)
        .filter_by(clinic_id=clinic_id, month=month)
        .values(line_reported=line_used_total, reconciled_at=utcnow()),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    if added:
        get_redis().eval(_ADJUST, 1, _redis_key(clinic_id, month), added)
    return Reconciliation(ours, line_used_total, added, _limit_differs(clinic_id, line_limit))


def _limit_differs(clinic_id: int, line_limit: int | None) -> bool:
    ours = plan_for_clinic(clinic_id).limit
    if line_limit is None or ours is None or line_limit == ours:
        return False
    log.warning("quota limit mismatch clinic=%s ours=%s line=%s: check the clinic's plan", clinic_id, ours, line_limit)
    return True
