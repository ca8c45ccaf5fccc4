"""Manifests carry a clinic's friend fields and inflow sources: apply, export back, re-apply unchanged."""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db
from saas.fields.models import FriendField
from saas.friends.models import Tag
from saas.sources.models import InflowSource
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope

MANIFEST = """
version: 1
organization: {slug: data-org, name: データ医療法人}
clinics:
  - slug: data-clinic
    name: データ内科
    friend_fields:
      - {key: age_band, label: 年代, kind: choice, choices: [20代, 30代, 40代]}
      - {key: card_no, label: 診察券番号}
      - {key: last_visit, label: 最終来院日, kind: date}
    sources:
      - {name: 受付ポスター, token: poster-token-01, tags: [院内ポスター], poster_message: 予約もLINEで}
      - {name: ホームページ}
"""


def _apply(runner, path):
    return runner.invoke(args=["tenants", "apply", str(path)])


def test_fields_and_sources_apply_export_and_reapply_without_changes(runner, tmp_path):
    source = tmp_path / "data.yaml"
    source.write_text(MANIFEST, encoding="utf-8")
    first = _apply(runner, source)
    assert first.exit_code == 0, first.output
    with platform_scope("test"):
        clinic = db.session.scalar(sa.select(Clinic).where(Clinic.slug == "data-clinic"))
    with tenant_scope(clinic.id):
        assert [f.key for f in db.session.scalars(sa.select(FriendField).order_by(FriendField.position))] == [
            "age_band",
            "card_no",
            "last_visit",
        ]
        poster = db.session.scalar(sa.select(InflowSource).where(InflowSource.name == "受付ポスター"))
        tag = db.session.scalar(sa.select(Tag).where(Tag.name == "院内ポスター"))
        assert poster.token == "poster-token-01" and poster.tag_ids == [tag.id]
    assert "変更はありません / no changes" in _apply(runner, source).output

    exported = tmp_path / "exported.yaml"
    assert runner.invoke(args=["tenants", "export", "data-clinic", "-o", str(exported)]).exit_code == 0
    text = exported.read_text(encoding="utf-8")
    assert "friend_fields:" in text and "poster-token-01" in text and "院内ポスター" in text
    assert "変更はありません / no changes" in _apply(runner, exported).output


def test_a_bad_field_kind_applies_nothing_and_names_the_path(runner, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(MANIFEST.replace("kind: date", "kind: calendar"), encoding="utf-8")
    result = _apply(runner, broken)
    assert result.exit_code != 0 and "friend_fields" in result.output
    with platform_scope("test"):
        assert db.session.scalar(sa.select(sa.func.count(FriendField.id))) == 0
        assert db.session.scalar(sa.select(sa.func.count(InflowSource.id))) == 0
