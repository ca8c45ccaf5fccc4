"""Manifests carry a clinic's coupons and shop card: apply, export back, re-apply unchanged."""

from __future__ import annotations

from datetime import date, timedelta

import sqlalchemy as sa

from saas.cards import services as cards
from saas.coupons.models import Coupon, CouponStatus
from saas.extensions import db
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope

END = (date.today() + timedelta(days=60)).isoformat()
MANIFEST = f"""
version: 1
organization: {{slug: coupon-org, name: クーポン医療法人}}
clinics:
  - slug: coupon-clinic
    name: クーポン皮膚科
    coupons:
      - {{title: しみ取り 初回20%オフ, purpose: self_pay, service: しみ取りレーザー, reward_value: 20,
         starts_on: 2026-01-01, ends_on: {END}, target: segment, segment_tags: [美容]}}
      - {{title: 来院5回でハンドクリーム, purpose: goods, service: ハンドクリーム, reward_kind: gift,
         starts_on: 2026-01-01, ends_on: {END}, target: reward}}
    shop_card:
      enabled: true
      points_per_visit: 1
      rewards: [{{points: 5, coupon: 来院5回でハンドクリーム}}]
"""


def _apply(runner, path):
    return runner.invoke(args=["tenants", "apply", str(path)])


def test_coupons_and_the_shop_card_apply_export_and_reapply_without_changes(runner, tmp_path):
    source = tmp_path / "coupons.yaml"
    source.write_text(MANIFEST, encoding="utf-8")
    first = _apply(runner, source)
    assert first.exit_code == 0, first.output
    with platform_scope("test"):
        clinic = db.session.scalar(sa.select(Clinic).where(Clinic.slug == "coupon-clinic"))
    with tenant_scope(clinic.id):
        coupons = {c.title: c for c in db.session.scalars(sa.select(Coupon))}
        assert {c.status for c in coupons.values()} == {CouponStatus.DRAFT}
        assert coupons["しみ取り 初回20%オフ"].segment["tag_ids"]
        settings = cards.get_settings(clinic.id)
        assert settings.enabled and [(r.threshold, r.coupon_id) for r in cards.rewards()] == [
            (5, coupons["来院5回でハンドクリーム"].id)
        ]
    assert "変更はありません / no changes" in _apply(runner, source).output

    exported = tmp_path / "exported.yaml"
    assert runner.invoke(args=["tenants", "export", "coupon-clinic", "-o", str(exported)]).exit_code == 0
    text = exported.read_text(encoding="utf-8")
    assert "coupons:" in text and "segment_tags:" in text and "shop_card:" in text and "desk_key" not in text
    assert "変更はありません / no changes" in _apply(runner, exported).output


def test_a_coupon_for_insured_care_in_a_manifest_applies_nothing_and_names_the_path(runner, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(MANIFEST.replace("service: しみ取りレーザー", "service: 再診料"), encoding="utf-8")
    answer = _apply(runner, broken)
    assert answer.exit_code != 0 and "coupons[0]" in answer.output and "保険診療" in answer.output
    with platform_scope("test"):
        assert db.session.scalar(sa.select(sa.func.count(Coupon.id))) == 0
