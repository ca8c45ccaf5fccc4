"""The manifest sections ``coupons`` and ``shop_card`` of a clinic: export and apply.

Coupons are found by title: new ones are added as drafts, listed ones updated (a coupon
running on LINE only where LINE allows), unlisted ones kept. Publishing and sending stay
staff actions. The shop card's settings and rewards (by coupon title) are applied as given;
its desk key is never exported.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from saas.cards import services as cards
from saas.cards.models import CardReward
from saas.coupons import services
from saas.coupons.models import Coupon, CouponStatus, Target
from saas.extensions import db
from saas.friends import services as friends
from saas.manifests.schema import CardRewardSpec, CouponSpec, ShopCardSpec
from saas.tenancy.scoping import tenant_scope

CARD_FIELDS = ("enabled", "name", "points_per_visit", "expiry_days", "qr_seconds", "restart_after_last_reward")


def coupon_spec(coupon: Coupon, tag_names: dict[int, str]) -> CouponSpec:
    """A coupon as its manifest spec (segment tags by name)."""
    values = services.values_of(coupon)
    tags = [tag_names[t] for t in (values.segment or {}).get("tag_ids", []) if t in tag_names]
    fields = {k: v for k, v in vars(values).items() if k != "segment"}
    return CouponSpec(**fields, segment_tags=tags)


def _card_spec(clinic, titles: dict[int, str]) -> ShopCardSpec | None:
    settings = cards.get_settings(clinic.id)
    rewards = [CardRewardSpec(points=r.threshold, coupon=titles[r.coupon_id]) for r in cards.rewards()]
    if not settings.enabled and not rewards:
        return None
    return ShopCardSpec(**{name: getattr(settings, name) for name in CARD_FIELDS}, rewards=rewards)


def export(clinic) -> dict:
    """``coupons`` (not ended) and ``shop_card`` of the clinic as manifest specs."""
    with tenant_scope(clinic.id):
        tag_names = {tag.id: tag.name for tag in friends.clinic_tags()}
        coupons = [c for c in reversed(services.all_coupons()) if c.status != CouponStatus.CLOSED]
        titles = {c.id: c.title for c in coupons}
        return {"coupons": [coupon_spec(c, tag_names) for c in coupons], "shop_card": _card_spec(clinic, titles)}


def apply(clinic, spec, sections: set[str], change: Callable[[str], None], fail: Callable[[str, str], None]) -> None:
    """Bring the clinic's coupons and shop card in line with the manifest (the caller commits)."""
    db.session.flush()
    with tenant_scope(clinic.id):
        if "coupons" in sections:
            for index, wanted in enumerate(spec.coupons):
                _apply_coupon(clinic, wanted, f"coupons[{index}]", change, fail)
        if "shop_card" in sections and spec.shop_card is not None:
            _apply_card(clinic, spec.shop_card, change, fail)


def _by_title(title: str) -> Coupon | None:
    query = sa.select(Coupon).where(Coupon.title == title, Coupon.status != CouponStatus.CLOSED)
    return db.session.scalars(query.order_by(Coupon.id.desc())).first()


def values_from_spec(spec: CouponSpec, path: str, fail) -> services.CouponValues:
    """The form values of a coupon spec (segment tags made in the clinic as needed); ``fail`` reports."""
    segment = {}
    if spec.target == Target.SEGMENT:
        if not spec.segment_tags:
            fail(f"{path}.segment_tags", "target: segment にはタグを1つ以上書いてください")
        segment = {"tag_ids": [friends.get_or_create_tag(name).id for name in spec.segment_tags], "tag_match": "any"}
    fields = spec.model_dump(exclude={"segment_tags"})
    return services.CouponValues(**fields, segment=segment)


def _apply_coupon(clinic, spec: CouponSpec, path: str, change, fail) -> None:
    coupon = _by_title(spec.title)
    wanted = values_from_spec(spec, path, fail)
    if coupon is not None and services.values_of(coupon) == wanted:
        return
    creating = coupon is None
    try:
        services.save(coupon or Coupon(clinic_id=clinic.id), wanted)
    except services.CouponProblem as problem:
        fail(path, str(problem))
    change(f"coupons: 「{spec.title}」を{'追加（下書き）' if creating else '更新'}")


def _apply_card(clinic, spec: ShopCardSpec, change, fail) -> None:
    settings = cards.get_settings(clinic.id)
    rewards = []
    for index, reward in enumerate(spec.rewards):
        coupon = _by_title(reward.coupon)
        if coupon is None:
            fail(f"shop_card.rewards[{index}].coupon", f"クーポン「{reward.coupon}」がありません")
        rewards.append(cards.RewardSpec(reward.points, coupon.id))
    current = (tuple(getattr(settings, n) for n in CARD_FIELDS), {(r.threshold, r.coupon_id) for r in cards.rewards()})
    wanted = (tuple(getattr(spec, n) for n in CARD_FIELDS), {(r.threshold, r.coupon_id) for r in rewards})
    if current == wanted:
        return
    for name in CARD_FIELDS:
        setattr(settings, name, getattr(spec, name))
    try:
        cards.check_settings(settings, rewards)
    except cards.CardProblem as problem:
        fail("shop_card", str(problem))
    db.session.execute(sa.delete(CardReward))
    db.session.add_all(CardReward(clinic_id=clinic.id, threshold=r.threshold, coupon_id=r.coupon_id) for r in rewards)
    db.session.flush()
    change("shop_card を更新")
