"""Shop cards: settings and rewards, stamping (one per visit day), rewards issued as coupons.

A stamp row is unique per card and visit day, so a replayed QR, a double tap or two desks at
once give one stamp; points move by SQL increments, never read-modify-write.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _
from sqlalchemy.exc import IntegrityError

from saas.audit import services as audit
from saas.cards import tokens
from saas.cards.models import CardReward, CardSettings, CardStamp, PointCard
from saas.common import N_, clinic_row
from saas.coupons import services as coupons
from saas.coupons.models import Coupon, CouponStatus, Target
from saas.extensions import db
from saas.friends.models import Friend, FriendStatus
from saas.schedule.services import clinic_now
from saas.tenancy.models import Clinic
from saas.visits import services as visits
from saas.visits.models import VisitSource

PENDING_LOGIN_SECONDS = 180  # a desk QR checked before LINE Login may be used this long after


class CardProblem(Exception):
    """Card settings that cannot be saved as given."""


class StampRefused(Exception):
    """No stamp; ``reason`` is what the patient (or the desk) reads, ``kind`` a stable key."""

    def __init__(self, kind: str, reason: str):
        super().__init__(reason)
        self.kind, self.reason = kind, reason


@dataclass(frozen=True)
class RewardSpec:
    threshold: int
    coupon_id: int


@dataclass
class Stamped:
    card: PointCard
    points_added: int
    rewards: list[Coupon] = field(default_factory=list)


def get_settings(clinic_id: int) -> CardSettings:
    """The clinic's card settings (created, switched off, on first use)."""
    return clinic_row(CardSettings, clinic_id)


def rewards() -> list[CardReward]:
    """The current clinic's rewards, lowest threshold first."""
    return list(db.session.scalars(sa.select(CardReward).order_by(CardReward.threshold)))


def reward_coupons() -> list[Coupon]:
    """Coupons that can be a card's reward (target 「ショップカードの特典」, not ended)."""
    return list(
        db.session.scalars(
            sa.select(Coupon).where(Coupon.target == Target.REWARD, Coupon.status != CouponStatus.CLOSED)
        )
    )


def check_settings(settings: CardSettings, wanted: list[RewardSpec]) -> None:
    """Raise :class:`CardProblem` for settings or rewards that cannot be used."""
    if not 1 <= settings.points_per_visit <= 10:
        raise CardProblem(_("1回の来院のポイントは1〜10にしてください。"))
    if not 30 <= settings.qr_seconds <= 60:
        raise CardProblem(_("受付QRの切り替え間隔は30〜60秒にしてください。"))
    if settings.expiry_days is not None and not 1 <= settings.expiry_days <= 3650:
        raise CardProblem(_("ポイントの有効期限は1〜3650日にしてください（空欄: 無期限）。"))
    thresholds = [r.threshold for r in wanted]
    if any(t < 1 for t in thresholds) or len(set(thresholds)) != len(thresholds):
        raise CardProblem(_("特典のポイント数は1以上で、重ならないようにしてください。"))
    allowed = {c.id for c in reward_coupons()}
    if any(r.coupon_id not in allowed for r in wanted):
        raise CardProblem(_("特典には「ショップカードの特典」を対象にしたクーポンを選んでください。"))
    if settings.enabled and not wanted:
        raise CardProblem(_("ショップカードを使うには特典を1つ以上設定してください。"))


def save_settings(settings: CardSettings, wanted: list[RewardSpec], actor=None) -> None:
    """Check and store the settings and the rewards (replaced whole), audited. Commits."""
    check_settings(settings, wanted)
    before = {r.threshold: r.coupon_id for r in rewards()}
    db.session.execute(sa.delete(CardReward))
    for reward in wanted:
        db.session.add(CardReward(clinic_id=settings.clinic_id, threshold=reward.threshold, coupon_id=reward.coupon_id))
    audit.record("card.settings", clinic_id=settings.clinic_id, target_type="card_settings", target_id=settings.id,
                 details={"enabled": settings.enabled, "points_per_visit": settings.points_per_visit,
                          "rewards_before": before, "rewards": {r.threshold: r.coupon_id for r in wanted}},
                 actor=actor)  # fmt: skip
    db.session.commit()


def desk_token(clinic: Clinic) -> str:
    """A fresh desk QR token for the clinic."""
    return tokens.make("desk", clinic.id, get_settings(clinic.id).desk_key)


def stamp_url(clinic: Clinic, token: str) -> str:
    """What the desk QR encodes: the patient's stamp page (opened by LINE's camera)."""
    return f"{current_app.config['PUBLIC_BASE_URL'].rstrip('/')}/book/{clinic.slug}/card/stamp?t={token}"


TOKEN_REASONS = {
    "expired": N_("QRコードの有効期限が切れました。受付に表示されている新しいQRコードを読み取ってください。"),
    "other_clinic": N_("このQRコードは他の医療機関のものです。"),
    "signature": N_("このQRコードは正しくありません。受付に表示されているQRコードを読み取ってください。"),
    "malformed": N_("このQRコードは正しくありません。受付に表示されているQRコードを読み取ってください。"),
}


def _token_refusal(refused: tokens.TokenRefused) -> StampRefused:
    return StampRefused(refused.kind, _(TOKEN_REASONS[refused.kind]))


def check_desk_token(clinic: Clinic, raw: str, *, lifetime: int | None = None) -> tokens.Token:
    """The desk token if it is valid now (its rotation plus grace); :class:`StampRefused` otherwise."""
    settings = get_settings(clinic.id)
    if not settings.enabled:
        raise StampRefused("disabled", _("この医療機関ではショップカードを使っていません。"))
    try:
        return tokens.verify(raw, "desk", clinic.id, settings.desk_key,
                             lifetime or settings.qr_seconds + tokens.GRACE_SECONDS)  # fmt: skip
    except tokens.TokenRefused as refused:
        raise _token_refusal(refused) from refused


def card_of(friend: Friend) -> PointCard | None:
    """The friend's card, if they have one."""
    return db.session.scalar(sa.select(PointCard).where(PointCard.friend_id == friend.id))


def card_for(friend: Friend) -> PointCard:
    """The friend's card, created on first use (a race: the unique key decides). Flushes."""
    found = card_of(friend)
    if found is None:
        try:
            with db.session.begin_nested():
                found = PointCard(clinic_id=friend.clinic_id, friend_id=friend.id, line_user_id=friend.line_user_id)
                db.session.add(found)
        except IntegrityError:
            found = card_of(friend)
    return found


def card_token(card: PointCard) -> str:
    """What the patient's card QR encodes, for staff to scan (good for a few minutes)."""
    return tokens.make("card", card.clinic_id, get_settings(card.clinic_id).desk_key, subject=card.public_id)


def card_from_token(clinic: Clinic, raw: str) -> PointCard:
    """The card a scanned card QR names; :class:`StampRefused` when it is not valid here and now."""
    settings = get_settings(clinic.id)
    try:
        token = tokens.verify(raw.strip(), "card", clinic.id, settings.desk_key, tokens.CARD_TOKEN_SECONDS)
    except tokens.TokenRefused as refused:
        raise _token_refusal(refused) from refused
    card = db.session.scalar(sa.select(PointCard).where(PointCard.public_id == token.subject))
    if card is None:
        raise StampRefused("unknown", _("このカードは見つかりません。"))
    return card


def _today(clinic: Clinic) -> date:
    return clinic_now(clinic).date()


def _lapse_if_expired(card: PointCard, today: date) -> None:
    if card.expires_on and today > card.expires_on and card.points:
        audit.record("card.expired", clinic_id=card.clinic_id, target_type="point_card", target_id=card.id,
                     details={"points": card.points, "expired_on": card.expires_on.isoformat()})  # fmt: skip
        card.points = 0
        db.session.flush()


def _add_stamp(card: PointCard, today: date, points: int, method: str, nonce: str, actor) -> None:
    try:
        with db.session.begin_nested():
            db.session.add(
                CardStamp(clinic_id=card.clinic_id, card_id=card.id, friend_id=card.friend_id, visit_day=today,
                          points=points, method=method, token_nonce=nonce[:32], staff_user_id=getattr(actor, "id", None))
            )  # fmt: skip
    except IntegrityError as exc:
        raise StampRefused(
            "already_today", _("本日のスタンプはすでに押してあります。次回のご来院をお待ちしています。")
        ) from exc


def stamp(friend: Friend, *, method: str, nonce: str = "", actor=None) -> Stamped:
    """One stamp for today's visit (at most one per day), rewards at the thresholds crossed,
    audited. Commits; the reward pushes go through the delivery pipeline after the commit."""
    clinic = db.session.get(Clinic, friend.clinic_id)
    settings = get_settings(clinic.id)
    if not settings.enabled:
        raise StampRefused("disabled", _("この医療機関ではショップカードを使っていません。"))
    if friend.status != FriendStatus.FOLLOWING:
        raise StampRefused("not_friend", _("スタンプを受け取るには、LINEで当院を友だち追加してください。"))
    today, card = _today(clinic), card_for(friend)
    _lapse_if_expired(card, today)
    try:
        _add_stamp(card, today, settings.points_per_visit, method, nonce, actor)
    except StampRefused:
        db.session.rollback()
        raise
    visits.record(friend.id, clinic.id, today, VisitSource.CARD, staff=actor)  # the stamp is a visit
    before = card.points
    earned = _advance(card, settings, today)
    audit.record("card.stamped", clinic_id=clinic.id, target_type="point_card", target_id=card.id, actor=actor,
                 details={"friend_id": friend.id, "method": method, "visit_day": today.isoformat(),
                          "points_before": before, "points": card.points})  # fmt: skip
    for coupon in earned:
        coupons.grant_reward(coupon, friend)
        audit.record("card.reward", clinic_id=clinic.id, target_type="coupon", target_id=coupon.id, actor=actor,
                     details={"friend_id": friend.id, "card_id": card.id, "title": coupon.title})  # fmt: skip
    db.session.commit()
    for coupon in earned:
        reason = _("ポイントが貯まりました！特典のクーポン「%(title)s」をお受け取りください。", title=coupon.title)
        coupons.push_to_friend(friend, coupons.reward_messages(coupon, reason), _("ショップカード特典"))
    return Stamped(card, settings.points_per_visit, earned)


def _advance(card: PointCard, settings: CardSettings, today: date) -> list[Coupon]:
    """Add the visit's points (SQL increment); the reward coupons of every threshold crossed."""
    db.session.execute(
        sa.update(PointCard)
        .where(PointCard.id == card.id)
        .values(points=PointCard.points + settings.points_per_visit, stamps_total=PointCard.stamps_total + 1),
        execution_options={"synchronize_session": False},
    )
    db.session.refresh(card)
    after, before = card.points, card.points - settings.points_per_visit
    card.last_stamp_on = today
    card.expires_on = today + timedelta(days=settings.expiry_days) if settings.expiry_days else None
    crossed = [r for r in rewards() if before < r.threshold <= after]
    top = max((r.threshold for r in rewards()), default=0)
    if settings.restart_after_last_reward and top and after >= top:
        card.points, card.rounds_completed = after - top, card.rounds_completed + 1
    db.session.flush()
    found = [db.session.get(Coupon, r.coupon_id) for r in crossed]
    return [c for c in found if c is not None and c.status == CouponStatus.RUNNING]


def figures() -> dict:
    """The current clinic's cards: how many, stamps this month, rewards given."""
    month_start = clinic_now(None).date().replace(day=1)
    return {
        "cards": db.session.scalar(sa.select(sa.func.count(PointCard.id))) or 0,
        "stamps_this_month": db.session.scalar(
            sa.select(sa.func.count(CardStamp.id)).where(CardStamp.visit_day >= month_start)
        )
        or 0,
    }


def stamps_of(card: PointCard, limit: int = 20) -> list[CardStamp]:
    """The card's newest stamps."""
    query = sa.select(CardStamp).where(CardStamp.card_id == card.id).order_by(CardStamp.visit_day.desc())
    return list(db.session.scalars(query.limit(limit)))
