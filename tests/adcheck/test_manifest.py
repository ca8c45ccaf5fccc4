"""Manifests carry an organization's 医療広告 rule overrides: apply, export back, apply again = no change."""

from __future__ import annotations

import sqlalchemy as sa

from saas.adcheck.models import AdRuleOverride
from saas.extensions import db

MANIFEST = """
version: 1
organization:
  slug: adcheck-kai
  name: 医療法人アドチェック会
  adcheck:
    rules:
      - id: free_gift
        enabled: false
      - id: superlative
        severity: warning
        allowed_phrases: [最高裁]
      - id: exaggeration
        extra_phrases: [圧倒的]
clinics:
  - slug: adcheck-main
    name: アドチェック内科
"""


def apply(runner, path):
    return runner.invoke(args=["tenants", "apply", str(path)])


def overrides() -> dict:
    db.session.expire_all()
    rows = db.session.scalars(sa.select(AdRuleOverride)).all()
    return {row.rule_id: (row.enabled, row.severity, row.extra_phrases, row.allowed_phrases) for row in rows}


def test_rule_overrides_apply_export_and_apply_again_without_changes(runner, tmp_path):
    source = tmp_path / "adcheck.yaml"
    source.write_text(MANIFEST, encoding="utf-8")
    first = apply(runner, source)
    assert first.exit_code == 0, first.output
    assert "adcheck.free_gift" in first.output
    assert overrides() == {
        "free_gift": (False, None, [], []),
        "superlative": (True, "warning", [], ["最高裁"]),
        "exaggeration": (True, None, ["圧倒的"], []),
    }
    assert "変更はありません / no changes" in apply(runner, source).output
    exported = tmp_path / "exported.yaml"
    assert runner.invoke(args=["tenants", "export", "adcheck-main", "-o", str(exported)]).exit_code == 0
    assert "allowed_phrases:\n      - 最高裁" in exported.read_text(encoding="utf-8")
    assert "変更はありません / no changes" in apply(runner, exported).output
    fewer = tmp_path / "fewer.yaml"
    fewer.write_text(MANIFEST.split("      - id: superlative")[0] + MANIFEST.split("[圧倒的]")[1], encoding="utf-8")
    outcome = apply(runner, fewer)
    assert "adcheck.superlative: 標準に戻す" in outcome.output, outcome.output
    assert set(overrides()) == {"free_gift"}


def test_a_manifest_without_the_section_leaves_the_overrides_alone(runner, tmp_path):
    source = tmp_path / "adcheck.yaml"
    source.write_text(MANIFEST, encoding="utf-8")
    apply(runner, source)
    plain = tmp_path / "plain.yaml"
    plain.write_text(MANIFEST.split("  adcheck:")[0] + "clinics:" + MANIFEST.split("clinics:")[1], encoding="utf-8")
    assert "変更はありません / no changes" in apply(runner, plain).output
    assert len(overrides()) == 3


def test_an_unknown_rule_is_refused_with_its_path(runner, tmp_path):
    source = tmp_path / "bad.yaml"
    source.write_text(MANIFEST.replace("id: free_gift", "id: free_gifts"), encoding="utf-8")
    outcome = apply(runner, source)
    assert outcome.exit_code != 0
    assert "organization.adcheck.rules[0]" in outcome.output and "free_gifts" in outcome.output
    assert overrides() == {}
