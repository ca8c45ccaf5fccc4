"""Redeeming a coupon code at the desk: exactly once, with a clear reason when refused.

The ticket's and the coupon's counters move only through conditional UPDATEs in the same
transaction as the redemption row (unique per ticket and use number). On Postgres the first
UPDATE takes the ticket's row lock, so a second desk waits and then finds the use gone; on
SQLite the write transaction is ``BEGIN IMMEDIATE``, so the two run one after the other.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from saas.audit import services as audit
from saas.common import JAPAN, to_local, utcnow
from saas.coupons import hooks
from saas.coupons.models import CODE_LENGTH, Coupon, CouponRedemption, CouponStatus, CouponTicket
from saas.extensions import db
from saas.tenancy.scoping import platform_scope


class RedemptionRefused(Exception):
    """The code cannot be redeemed; ``reason`` is what the desk reads, ``kind`` a stable key."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


@dataclass(frozen=True)
class Redeemed:
    redemption_id: int
    coupon_title: str
    use_no: int
    uses_allowed: int
    friend_id: int | None


def normalise_code(typed: str) -> str:
    """What staff typed or scanned (full-width, lower case, hyphens, a scanned URL) as a code."""
    text = unicodedata.normalize("NFKC", typed or "").upper()
    if "/" in text or "=" in text:  # a QR scanner may deliver the whole URL or "code=..."
        text = re.split(r"[/=]", text)[-1]
    return re.sub(r"[^A-Z0-9]", "", text)


def _day(moment) -> str:
    local = to_local(moment, JAPAN)
    return f"{local.year}年{local.month}月{local.day}日"


def _find(code: str) -> CouponTicket:
    if len(code) != CODE_LENGTH:
        raise RedemptionRefused("unknown", _("コードは%(n)s文字です。もう一度入力してください。", n=CODE_LENGTH))
    ticket = db.session.scalar(sa.select(CouponTicket).where(CouponTicket.code == code))
    if ticket is not None:
        return ticket
    with platform_scope("coupon desk: tell another clinic's code from a mistyped one"):
        elsewhere = db.session.scalar(sa.select(sa.exists().where(CouponTicket.code == code)))
    if elsewhere:
        raise RedemptionRefused("other_clinic", _("このクーポンは他の医療機関のものです。当院では使えません。"))
    raise RedemptionRefused("unknown", _("このコードのクーポンは見つかりません。入力をご確認ください。"))


def _check_coupon(coupon: Coupon, now) -> None:
    if coupon.status == CouponStatus.CLOSED:
        raise RedemptionRefused("closed", _("このクーポンは配布を終了しています。"))
    if coupon.status != CouponStatus.RUNNING:
        raise RedemptionRefused("closed", _("このクーポンはまだ公開されていません。"))
    if now < coupon.starts_at:
        raise RedemptionRefused("not_started", _("このクーポンは%(day)sから使えます。", day=_day(coupon.starts_at)))
    if now > coupon.ends_at:
        raise RedemptionRefused("expired", _("有効期限（%(day)sまで）が切れています。", day=_day(coupon.ends_at)))


def _take_use(ticket: CouponTicket, coupon: Coupon) -> int:
    """Count one use on the ticket and the coupon, or refuse; the use number. Does not commit."""
    taken = db.session.execute(
        sa.update(CouponTicket)
        .where(CouponTicket.id == ticket.id, CouponTicket.used_count < CouponTicket.uses_allowed)
        .values(used_count=CouponTicket.used_count + 1),
        execution_options={"synchronize_session": False},
    )
    if taken.rowcount != 1:
        raise RedemptionRefused("used", _("このクーポンは使用済みです（%(n)s回まで）。", n=ticket.uses_allowed))
    limit = sa.true() if coupon.total_limit is None else Coupon.used_count < coupon.total_limit
    counted = db.session.execute(
        sa.update(Coupon).where(Coupon.id == coupon.id, limit).values(used_count=Coupon.used_count + 1),
        execution_options={"synchronize_session": False},
    )
    if counted.rowcount != 1:
        raise RedemptionRefused(
            "used_up", _("このクーポンは利用上限（先着%(n)s回）に達しました。", n=coupon.total_limit)
        )
    return db.session.scalar(sa.select(CouponTicket.used_count).where(CouponTicket.id == ticket.id))


def redeem(typed_code: str, actor=None) -> Redeemed:
    """Redeem one use of the code in the current clinic, audited. Commits; raises
    :class:`RedemptionRefused` (nothing changed) with the reason to show."""
    code = normalise_code(typed_code)
    try:
        ticket = _find(code)
    except RedemptionRefused as refused:
        audit.record("coupon.redeem_refused", target_type="coupon", details={"reason": refused.kind}, actor=actor,
                     commit=True)  # fmt: skip
        raise
    coupon = db.session.get(Coupon, ticket.coupon_id)
    try:
        _check_coupon(coupon, utcnow())
        use_no = _take_use(ticket, coupon)
        redemption = CouponRedemption(
            clinic_id=ticket.clinic_id, coupon_id=coupon.id, ticket_id=ticket.id, use_no=use_no,
            friend_id=ticket.friend_id, delivery_id=ticket.delivery_id,
            staff_user_id=getattr(actor, "id", None), staff_email=getattr(actor, "email", "") or "",
        )  # fmt: skip
        db.session.add(redemption)
        db.session.flush()
    except RedemptionRefused as refused:
        db.session.rollback()
        _audit_refusal(ticket, refused, actor)
        raise
    except IntegrityError as exc:  # the unique (ticket, use) row: a use taken in the same instant
        db.session.rollback()
        raise RedemptionRefused("used", _("このクーポンは使用済みです。")) from exc
    audit.record("coupon.redeemed", clinic_id=ticket.clinic_id, target_type="coupon", target_id=coupon.id,
                 details={"title": coupon.title, "ticket_id": ticket.id, "use_no": use_no,
                          "friend_id": ticket.friend_id, "delivery_id": ticket.delivery_id}, actor=actor)  # fmt: skip
    db.session.commit()
    hooks.coupon_used(ticket.clinic_id, coupon.id, ticket.friend_id)
    return Redeemed(redemption.id, coupon.title, use_no, ticket.uses_allowed, ticket.friend_id)


def _audit_refusal(ticket: CouponTicket, refused: RedemptionRefused, actor) -> None:
    audit.record("coupon.redeem_refused", clinic_id=ticket.clinic_id, target_type="coupon", target_id=ticket.coupon_id,
                 details={"ticket_id": ticket.id, "reason": refused.kind}, actor=actor, commit=True)  # fmt: skip
