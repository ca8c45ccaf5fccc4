"""Coupons: saving (self-pay only), publishing on LINE, sending through the delivery pipeline,
patients' tickets and the figures. Redemption at the desk is in :mod:`saas.coupons.redemption`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from saas.adcheck import services as adcheck
from saas.audit import services as audit
from saas.autoreply.normalize import normalize
from saas.common import JAPAN, N_, parse_big_id, to_local, to_utc, utcnow
from saas.coupons.models import (
    Coupon,
    CouponRedemption,
    CouponSend,
    CouponStatus,
    CouponTicket,
    Purpose,
    RewardKind,
    Target,
)
from saas.delivery import services as deliveries
from saas.delivery.audience import count_audience, segment_filters
from saas.delivery.models import DeliveryKind
from saas.extensions import db
from saas.friends.models import Friend, FriendStatus
from saas.line import coupons as line_coupons
from saas.line.errors import LineError
from saas.receipts.models import ReceiptSource
from saas.sendguard import guard
from saas.tenancy.models import Clinic

SELF_PAY_PURPOSES = (Purpose.SELF_PAY, Purpose.CHECKUP, Purpose.GOODS)
# Words that tie a price offer to insured care (保険診療): a coupon must not discount these.
INSURED_TERMS = ("保険診療", "保険適用", "保険証", "初診料", "再診料", "診察料", "自己負担", "窓口負担", "処方箋料")
SENDABLE_TARGETS = (Target.ALL, Target.SEGMENT)
COUPON_SOURCE = ReceiptSource.COUPON  # its deliveries' ``source``: the friends' receipts say クーポン


class CouponProblem(Exception):
    """A coupon that cannot be saved, published or sent as asked; the message says why."""


@dataclass(frozen=True)
class CouponValues:
    """What the form (or a manifest) asks for a coupon."""

    title: str
    purpose: str
    service: str
    reward_kind: str
    reward_value: int
    starts_on: date
    ends_on: date
    description: str = ""
    usage_condition: str = ""
    total_limit: int | None = None
    per_patient_limit: int = 1
    target: str = Target.ALL
    segment: dict | None = None


def insured_care_refusal(values: CouponValues) -> str | None:
    """Why the coupon would be price inducement for insured care, or None when it is self-pay."""
    if values.purpose == Purpose.INSURED:
        return _(
            "保険診療の費用を割り引く・無料にするクーポンは作れません。保険診療の値引きは患者さんを"
            "不当に誘引する行為として禁じられています（保険医療機関及び保険医療養担当規則、医療広告ガイドライン）。"
            "自費診療・健診・物販のクーポンとして作成してください。"
        )
    text = normalize(" ".join((values.title, values.service, values.description, values.usage_condition)))
    for term in INSURED_TERMS:
        if normalize(term) in text:
            return _(
                "「%(term)s」は保険診療の費用です。保険診療の費用を割り引くクーポンは作れません"
                "（保険医療機関及び保険医療養担当規則、医療広告ガイドライン）。対象を自費のサービスにしてください。",
                term=term,
            )
    return None


def _check_reward(values: CouponValues) -> None:
    if values.reward_kind not in set(RewardKind):
        raise CouponProblem(_("特典の種類を選んでください。"))
    if values.reward_kind == RewardKind.DISCOUNT_PERCENT and not 1 <= values.reward_value <= 99:
        raise CouponProblem(_("割引率は1〜99％で指定してください。"))
    if values.reward_kind == RewardKind.DISCOUNT_YEN and values.reward_value < 1:
        raise CouponProblem(_("割引額は1円以上で指定してください。"))


def _check_text(values: CouponValues) -> None:
    if not values.title.strip() or len(values.title) > 60:
        raise CouponProblem(_("クーポン名は1〜60文字で入力してください。"))
    if not values.service.strip() or len(values.service) > 100:
        raise CouponProblem(_("何のためのクーポンか（対象のサービス）を100文字以内で入力してください。"))
    if len(values.description) > 1000 or len(values.usage_condition) > 100:
        raise CouponProblem(_("説明は1000文字、利用条件は100文字以内にしてください。"))


def _check_limits(values: CouponValues) -> None:
    if values.ends_on < values.starts_on:
        raise CouponProblem(_("有効期間の終了日は開始日より後にしてください。"))
    if values.ends_on < utcnow().date():
        raise CouponProblem(_("有効期間が終わっています。終了日を今日以降にしてください。"))
    if values.total_limit is not None and values.total_limit < 1:
        raise CouponProblem(_("全体の利用上限は1以上にしてください（上限なしは空欄）。"))
    if not 1 <= values.per_patient_limit <= 99:
        raise CouponProblem(_("1人あたりの利用回数は1〜99回にしてください。"))
    if values.target not in set(Target) or (values.target == Target.STEP and not step_targets_available()):
        raise CouponProblem(_("配布の対象を選んでください。"))


def check(values: CouponValues) -> None:
    """Raise :class:`CouponProblem` for a coupon that must not be saved as given."""
    refusal = insured_care_refusal(values)
    if refusal:
        raise CouponProblem(refusal)
    if values.purpose not in SELF_PAY_PURPOSES:
        raise CouponProblem(_("何のためのクーポンか（自費診療・健診・物販）を選んでください。"))
    _check_text(values)
    _check_reward(values)
    _check_limits(values)


def step_targets_available() -> bool:
    """Scenario steps can carry a coupon once step delivery (saas.steps) exists."""
    import importlib.util

    return importlib.util.find_spec("saas.steps") is not None


def save(coupon: Coupon, values: CouponValues) -> Coupon:
    """Check and write the values onto ``coupon`` (new or a draft). Flushes, does not commit."""
    if coupon.status == CouponStatus.CLOSED:
        raise CouponProblem(_("配布を終了したクーポンは変更できません。"))
    check(values)
    if coupon.status == CouponStatus.RUNNING and _line_fields(coupon) != _line_fields_of(values):
        raise CouponProblem(_("LINEで配布中のクーポンは内容と期間を変更できません。終了して新しく作成してください。"))
    coupon.title, coupon.purpose, coupon.service = values.title.strip(), values.purpose, values.service.strip()
    coupon.description, coupon.usage_condition = values.description.strip(), values.usage_condition.strip()
    coupon.reward_kind, coupon.reward_value = values.reward_kind, values.reward_value
    coupon.starts_at = to_utc(datetime.combine(values.starts_on, time.min))
    coupon.ends_at = to_utc(datetime.combine(values.ends_on, time.max.replace(microsecond=0)))
    coupon.total_limit, coupon.per_patient_limit = values.total_limit, values.per_patient_limit
    coupon.target, coupon.segment = values.target, values.segment or {}
    db.session.add(coupon)
    db.session.flush()
    return coupon


def _line_fields(coupon: Coupon) -> tuple:
    return (coupon.title, coupon.description, coupon.reward_kind, coupon.reward_value, local_days(coupon))


def _line_fields_of(values: CouponValues) -> tuple:
    days = (values.starts_on, values.ends_on)
    return (values.title.strip(), values.description.strip(), values.reward_kind, values.reward_value, days)


def local_days(coupon: Coupon) -> tuple[date, date]:
    """The first and last day (Japan) the coupon can be used."""
    return to_local(coupon.starts_at, JAPAN).date(), to_local(coupon.ends_at, JAPAN).date()


def values_of(coupon: Coupon) -> CouponValues:
    """The coupon as form values (to re-save it or to export it)."""
    first, last = local_days(coupon)
    return CouponValues(
        title=coupon.title, purpose=coupon.purpose, service=coupon.service, reward_kind=coupon.reward_kind,
        reward_value=coupon.reward_value, starts_on=first, ends_on=last, description=coupon.description,
        usage_condition=coupon.usage_condition, total_limit=coupon.total_limit,
        per_patient_limit=coupon.per_patient_limit, target=coupon.target, segment=dict(coupon.segment or {}),
    )  # fmt: skip


def _reward(coupon: Coupon) -> dict:
    if coupon.reward_kind == RewardKind.DISCOUNT_PERCENT:
        return {"type": "discount", "priceInfo": {"type": "percentage", "percentage": coupon.reward_value}}
    if coupon.reward_kind == RewardKind.DISCOUNT_YEN:
        return {"type": "discount", "priceInfo": {"type": "fixed", "fixedAmount": coupon.reward_value}}
    return {"type": coupon.reward_kind}


def line_body(coupon: Coupon) -> dict:
    """The coupon as LINE's ``CouponCreateRequest`` (one use per ticket; tickets and codes are ours)."""
    body = {
        "title": coupon.title,
        "description": coupon.description[:1000],
        "usageCondition": coupon.usage_condition or _("受付でコードをご提示ください"),
        "startTimestamp": epoch_seconds(coupon.starts_at),
        "endTimestamp": epoch_seconds(coupon.ends_at),
        "maxUseCountPerTicket": 1,
        "visibility": "UNLISTED",
        "timezone": "ASIA_TOKYO",
        "acquisitionCondition": {"type": "normal"},
        "reward": _reward(coupon),
    }
    return body


def epoch_seconds(moment: datetime) -> int:
    """A stored (naive UTC) time as LINE's epoch seconds."""
    return int(moment.replace(tzinfo=UTC).timestamp())


def publish(coupon: Coupon, actor=None) -> None:
    """Create the coupon on LINE and start it: it can then be sent and redeemed. Commits."""
    if coupon.status != CouponStatus.DRAFT:
        raise CouponProblem(_("このクーポンはすでに公開されています。"))
    check(values_of(coupon))
    clinic = db.session.get(Clinic, coupon.clinic_id)
    try:
        coupon.line_coupon_id = line_coupons.create(clinic, line_body(coupon))
    except LineError as exc:
        db.session.rollback()
        raise CouponProblem(_("LINEにクーポンを作成できませんでした: %(reason)s", reason=exc.message)) from exc
    coupon.status = CouponStatus.RUNNING
    audit.record("coupon.published", clinic_id=coupon.clinic_id, target_type="coupon", target_id=coupon.id,
                 details={"title": coupon.title, "line_coupon_id": coupon.line_coupon_id}, actor=actor)  # fmt: skip
    db.session.commit()


def close(coupon: Coupon, actor=None) -> None:
    """End the coupon here and on LINE: tickets can no longer be redeemed. Commits."""
    if coupon.status == CouponStatus.CLOSED:
        return
    if coupon.line_coupon_id:
        try:
            line_coupons.close(db.session.get(Clinic, coupon.clinic_id), coupon.line_coupon_id)
        except LineError as exc:
            if exc.status != 410:  # 410: LINE had already closed it
                raise CouponProblem(_("LINEのクーポンを終了できませんでした: %(reason)s", reason=exc.message)) from exc
    coupon.status = CouponStatus.CLOSED
    audit.record("coupon.closed", clinic_id=coupon.clinic_id, target_type="coupon", target_id=coupon.id,
                 details={"title": coupon.title}, actor=actor)  # fmt: skip
    db.session.commit()


def patient_url(coupon: Coupon, delivery_id: int | None = None) -> str:
    """The coupon's page for patients (LINE Login), carrying the send it came with."""
    clinic = db.session.get(Clinic, coupon.clinic_id)
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    suffix = f"?d={delivery_id}" if delivery_id else ""
    return f"{base}/book/{clinic.slug}/coupons/{coupon.public_id}{suffix}"


def coupon_messages(coupon: Coupon, delivery_id: int | None = None) -> list[dict]:
    """What a send of the coupon shows in LINE: LINE's coupon, and a card opening the patient's code."""
    first, last = local_days(coupon)
    text = _("有効期間 %(first)s〜%(last)s\n受付でコードをご提示ください。", first=_day(first), last=_day(last))
    card = {
        "type": "template",
        "altText": _("クーポン: %(title)s", title=coupon.title)[:400],
        "template": {
            "type": "buttons",
            "title": coupon.title[:40],
            "text": text[:160],
            "actions": [{"type": "uri", "label": _("クーポンを表示"), "uri": patient_url(coupon, delivery_id)}],
        },
    }
    shown = [{"type": "coupon", "couponId": coupon.line_coupon_id}] if coupon.line_coupon_id else []
    return [*shown, card]


def _day(day: date) -> str:
    return f"{day.month}月{day.day}日"


@dataclass(frozen=True)
class Sent:
    delivery_id: int
    approval_id: int | None = None  # held by the mis-send guard until a second staff member approves


def send(coupon: Coupon, actor=None) -> Sent:
    """Send the coupon to its target (every consenting friend, or its segment) through the
    delivery pipeline, held for approval when the mis-send guard says so. Commits."""
    if coupon.status != CouponStatus.RUNNING:
        raise CouponProblem(_("公開中のクーポンだけを配信できます。"))
    if coupon.target not in SENDABLE_TARGETS:
        raise CouponProblem(_("このクーポンは配信ではなく、ショップカードの特典やステップ配信で届きます。"))
    kind = DeliveryKind.SEGMENT if coupon.target == Target.SEGMENT else DeliveryKind.BROADCAST
    delivery = deliveries.create_delivery(
        messages=[],
        kind=kind,
        title=_("クーポン: %(title)s", title=coupon.title),
        segment=coupon.segment,
        actor=actor,
        source=COUPON_SOURCE,
    )
    delivery.messages = coupon_messages(coupon, delivery.id)
    db.session.add(CouponSend(clinic_id=coupon.clinic_id, coupon_id=coupon.id, delivery_id=delivery.id))
    audit.record("coupon.sent", clinic_id=coupon.clinic_id, target_type="coupon", target_id=coupon.id,
                 details={"delivery_id": delivery.id, "target": coupon.target}, actor=actor)  # fmt: skip
    approval_id = _held(delivery, actor)
    if approval_id is None:
        try:
            deliveries.submit(delivery)
        except deliveries.QueueUnavailable:
            db.session.execute(sa.delete(CouponSend).where(CouponSend.delivery_id == delivery.id))
            db.session.commit()
            raise
    return Sent(delivery.id, approval_id)


def _held(delivery, actor) -> int | None:
    """The mis-send guard's approval when this send must wait for a second staff member (committed)."""
    from saas import billing  # as saas.delivery.services does: billing imports the pipeline

    clinic = db.session.get(Clinic, delivery.clinic_id)
    findings = adcheck.check_messages(clinic, delivery.messages)
    count = count_audience(delivery.kind, delivery.segment).eligible
    verdict = guard.assess(clinic.id, delivery.kind, delivery.segment, count, findings)
    if not verdict.held:
        return None
    if deliveries.refused_for_billing(delivery, deliveries.PAUSED_AT_SUBMIT):
        raise billing.MarketingPaused
    return guard.hold(delivery, verdict, findings, actor).id


def reaches(coupon: Coupon, friend: Friend) -> bool:
    """Whether the coupon's target includes this friend (a ticket may be issued on their page)."""
    if friend.status != FriendStatus.FOLLOWING or coupon.target == Target.REWARD:
        return False
    if coupon.target in (Target.ALL, Target.STEP):  # a step coupon's link is only in its step's message
        return True
    conditions = segment_filters(coupon.segment or {})
    return db.session.scalar(sa.select(Friend.id).where(Friend.id == friend.id, *conditions)) is not None


def attributed_delivery(coupon: Coupon, delivery_id: str | None) -> int | None:
    """The send a patient came from, when it really carried this coupon."""
    delivery_id = parse_big_id(delivery_id or "")
    if not delivery_id:
        return None
    found = db.session.scalar(
        sa.select(CouponSend.delivery_id).where(
            CouponSend.coupon_id == coupon.id, CouponSend.delivery_id == delivery_id
        )
    )
    return found


def ticket_of(coupon: Coupon, friend: Friend) -> CouponTicket | None:
    """The friend's ticket of this coupon, if one was issued."""
    return db.session.scalar(
        sa.select(CouponTicket).where(CouponTicket.coupon_id == coupon.id, CouponTicket.friend_id == friend.id)
    )


def issue_ticket(coupon: Coupon, friend: Friend, *, delivery_id: int | None = None, origin: str = "delivery"):
    """The friend's ticket, created on first use (two tabs at once: the unique key decides). Commits."""
    found = ticket_of(coupon, friend)
    if found is not None:
        return found
    try:
        with db.session.begin_nested():
            found = CouponTicket(
                clinic_id=coupon.clinic_id, coupon_id=coupon.id, friend_id=friend.id, line_user_id=friend.line_user_id,
                delivery_id=delivery_id, origin=origin, uses_allowed=coupon.per_patient_limit,
            )  # fmt: skip
            db.session.add(found)
    except IntegrityError:
        found = ticket_of(coupon, friend)
    db.session.commit()
    return found


def grant_reward(coupon: Coupon, friend: Friend) -> CouponTicket:
    """A reward (shop card) gives the friend one more use of ``coupon``; flushes."""
    ticket = ticket_of(coupon, friend)
    if ticket is None:
        ticket = CouponTicket(
            clinic_id=coupon.clinic_id, coupon_id=coupon.id, friend_id=friend.id, line_user_id=friend.line_user_id,
            origin="reward", uses_allowed=1,
        )  # fmt: skip
        db.session.add(ticket)
    else:
        ticket.uses_allowed = CouponTicket.uses_allowed + 1
    db.session.flush()
    return ticket


def reward_messages(coupon: Coupon, reason: str) -> list[dict]:
    """The push telling a patient a reward coupon is theirs."""
    return [{"type": "text", "text": reason}, *coupon_messages(coupon)]


def push_to_friend(friend: Friend, messages: list[dict], title: str) -> int:
    """One friend, through the pipeline (quota, retry key). Commits; the delivery id."""
    delivery = deliveries.create_delivery(
        messages=messages, kind=DeliveryKind.PUSH, title=title, friend_id=friend.id, source=COUPON_SOURCE
    )
    deliveries.submit(delivery)
    return delivery.id


STATE_LABELS = {
    "usable": N_("使えます"),
    "used": N_("使用済み"),
    "expired": N_("有効期限切れ"),
    "closed": N_("配布終了"),
    "not_started": N_("開始前"),
}


def ticket_state(coupon: Coupon, ticket: CouponTicket | None, now: datetime | None = None) -> str:
    """usable / used / expired / closed / not_started, as the patient page shows it."""
    now = now or utcnow()
    if coupon.status == CouponStatus.CLOSED:
        return "closed"
    if now > coupon.ends_at:
        return "expired"
    if now < coupon.starts_at:
        return "not_started"
    if ticket is not None and ticket.used_count >= ticket.uses_allowed:
        return "used"
    return "usable"


@dataclass(frozen=True)
class CouponFigures:
    tickets: int = 0
    redeemed: int = 0


def figures() -> dict[int, CouponFigures]:
    """Tickets issued and uses per coupon of the current clinic."""
    tickets = dict(
        db.session.execute(sa.select(CouponTicket.coupon_id, sa.func.count()).group_by(CouponTicket.coupon_id)).all()
    )
    used = dict(
        db.session.execute(
            sa.select(CouponRedemption.coupon_id, sa.func.count()).group_by(CouponRedemption.coupon_id)
        ).all()
    )
    return {cid: CouponFigures(int(tickets.get(cid, 0)), int(used.get(cid, 0))) for cid in {*tickets, *used}}


def uses_by_delivery(coupon: Coupon) -> list[tuple[int | None, int]]:
    """Redemptions of the coupon per delivery that brought it (None: not from a send, e.g. a reward)."""
    rows = db.session.execute(
        sa.select(CouponRedemption.delivery_id, sa.func.count())
        .where(CouponRedemption.coupon_id == coupon.id)
        .group_by(CouponRedemption.delivery_id)
        .order_by(CouponRedemption.delivery_id)
    )
    return [(delivery_id, int(n)) for delivery_id, n in rows]


def all_coupons() -> list[Coupon]:
    """The clinic's coupons, newest first."""
    return list(db.session.scalars(sa.select(Coupon).order_by(Coupon.id.desc())))


def coupons_of_friend(friend: Friend) -> list[tuple[Coupon, CouponTicket]]:
    """Every ticket a friend holds, with its coupon (the friend page's section)."""
    rows = db.session.execute(
        sa.select(Coupon, CouponTicket)
        .join(CouponTicket, CouponTicket.coupon_id == Coupon.id)
        .where(CouponTicket.friend_id == friend.id)
        .order_by(CouponTicket.issued_at.desc())
    )
    return [(coupon, ticket) for coupon, ticket in rows]
