"""Tenant manifests: apply is idempotent and all-or-nothing per file; export applies back unchanged."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from saas.autoreply.models import AutoReplyRule
from saas.extensions import db
from saas.manifests import export
from saas.manifests.models import ChannelSecretSource
from saas.schedule.models import WeeklyBlock
from saas.tenancy.models import Clinic, Organization
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.factories import gen_clinic
from tests.helpers import assert_rows_isolated

TENANTS = Path(__file__).resolve().parents[2] / "tenants"

BAD_TIME = """
version: 1
organization: {slug: bad-org, name: 壊れた法人}
clinics:
  - slug: bad-clinic
    name: 壊れたクリニック
    schedule:
      weekly:
        mon:
          - {label: 午前, start: "09:00", end: "12:00"}
          - {label: 午後, start: "25:00", end: "18:00"}
"""


def apply(runner, target, *extra):
    return runner.invoke(args=["tenants", "apply", str(target), *extra])


def clinic_slugs() -> set[str]:
    with platform_scope("test"):
        return set(db.session.scalars(sa.select(Clinic.slug)))


def test_demo_manifests_apply_and_a_second_apply_changes_nothing(runner):
    first = apply(runner, TENANTS)
    assert first.exit_code == 0, first.output
    assert {"aoba-hifuka", "hikari-kenshin", "sakura-shibuya", "sakura-shinjuku", "sakura-shinagawa"} <= clinic_slugs()
    second = apply(runner, TENANTS)
    assert second.exit_code == 0
    assert second.output.count("変更はありません / no changes") == 3
    assert "適用した変更" not in second.output


def test_dry_run_prints_the_changes_and_applies_nothing(runner):
    result = apply(runner, TENANTS / "hikari-kenshin.yaml", "--dry-run")
    assert result.exit_code == 0
    assert "dry run" in result.output and "「前日の食事」を追加" in result.output
    assert "hikari-kenshin" not in clinic_slugs()


def test_a_bad_field_applies_nothing_and_names_file_and_path(runner, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD_TIME, encoding="utf-8")
    result = apply(runner, bad)
    assert result.exit_code != 0
    assert str(bad) in result.output
    assert "clinics[0].schedule.weekly.mon[1].start" in result.output
    assert "bad-clinic" not in clinic_slugs()
    with platform_scope("test"):
        assert db.session.scalars(sa.select(Organization).where(Organization.slug == "bad-org")).first() is None


def test_unknown_fields_are_rejected_with_their_path(runner, tmp_path):
    bad = tmp_path / "typo.yaml"
    bad.write_text(BAD_TIME.replace("    schedule:", "    shedule: {}\n    schedule:"), encoding="utf-8")
    result = apply(runner, bad)
    assert result.exit_code != 0 and "clinics[0].shedule" in result.output


def test_an_error_late_in_a_file_rolls_back_its_earlier_changes(runner, tmp_path):
    text = (TENANTS / "hikari-kenshin.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "late.yaml"
    bad.write_text(
        text.replace("subscriptions: [standard-clinic-faq]", "subscriptions: [no-such-set]"), encoding="utf-8"
    )
    result = apply(runner, bad)
    assert result.exit_code != 0
    assert "clinics[0].library.subscriptions[0]" in result.output
    assert "hikari-kenshin" not in clinic_slugs()


def test_export_apply_export_is_a_fixed_point(runner, tmp_path):
    assert apply(runner, TENANTS).exit_code == 0
    with platform_scope("test"):
        clinic = db.session.scalars(sa.select(Clinic).where(Clinic.slug == "aoba-hifuka")).one()
        db.session.add(AutoReplyRule(clinic_id=clinic.id, name="夜間", keywords=["夜"], match_type="exact",
                                     active_from="19:00", active_until="08:00", priority=5,
                                     messages=[{"type": "sticker", "packageId": "1", "stickerId": "2"}]))  # fmt: skip
        db.session.commit()
    first, second = tmp_path / "one.yaml", tmp_path / "two.yaml"
    assert runner.invoke(args=["tenants", "export", "aoba-hifuka", "-o", str(first)]).exit_code == 0
    reapplied = apply(runner, first)
    assert "変更はありません / no changes" in reapplied.output
    assert runner.invoke(args=["tenants", "export", "aoba-hifuka", "-o", str(second)]).exit_code == 0
    assert first.read_text(encoding="utf-8") == second.read_text(encoding="utf-8")
    assert "sticker" in first.read_text(encoding="utf-8")


def test_editing_a_manifest_changes_only_what_differs(runner, tmp_path):
    assert apply(runner, TENANTS / "hikari-kenshin.yaml").exit_code == 0
    edited = tmp_path / "hikari.yaml"
    text = (TENANTS / "hikari-kenshin.yaml").read_text(encoding="utf-8")
    edited.write_text(text.replace('end: "11:30"', 'end: "11:00"'), encoding="utf-8")
    result = apply(runner, edited)
    assert "schedule.weekly を更新" in result.output and "1 change(s)" in result.output
    with platform_scope("test"):
        ends = set(db.session.scalars(sa.select(WeeklyBlock.end)))
    assert ends == {"11:00"}


def test_channel_secrets_come_from_environment_variables(runner, monkeypatch):
    monkeypatch.setenv("HIKARI_KENSHIN_LINE_CHANNEL_SECRET", "s3cret")
    result = apply(runner, TENANTS / "hikari-kenshin.yaml")
    assert "HIKARI_KENSHIN_LINE_ACCESS_TOKEN が未設定" in result.output
    with platform_scope("test"):
        clinic = db.session.scalars(sa.select(Clinic).where(Clinic.slug == "hikari-kenshin")).one()
        assert clinic.line_channel_secret == "s3cret"
    exported = runner.invoke(args=["tenants", "export", "hikari-kenshin"]).output
    assert "HIKARI_KENSHIN_LINE_CHANNEL_SECRET" in exported and "s3cret" not in exported


def test_channel_sources_are_isolated_between_clinics(as_platform):
    a, b = gen_clinic(), gen_clinic()
    rows = [ChannelSecretSource(clinic_id=c.id, channel_secret_env="X") for c in (a, b)]
    db.session.add_all(rows)
    db.session.commit()
    assert_rows_isolated(ChannelSecretSource, rows[0], rows[1])


def test_applied_rules_answer_patients(runner):
    from types import SimpleNamespace

    from saas.autoreply.services import reply_to

    assert apply(runner, TENANTS / "aoba-hifuka.yaml").exit_code == 0
    with platform_scope("test"):
        clinic = db.session.scalars(sa.select(Clinic).where(Clinic.slug == "aoba-hifuka")).one()
    with tenant_scope(clinic.id):
        reply = reply_to(clinic, "ﾁｭｳｼｬｼﾞｮｳはありますか", SimpleNamespace(line_user_id="U1"), dry_run=True)
        payment = reply_to(clinic, "カードで支払いできますか", dry_run=True)
    assert "専用駐車場が3台分" in reply.messages[0]["text"]
    assert "交通系IC" in payment.messages[0]["text"]  # the clinic's override of the standard FAQ


def test_organization_links_apply_and_export_back_unchanged(runner, tmp_path):
    assert apply(runner, TENANTS / "sakura-kai.yaml").exit_code == 0
    exported = tmp_path / "sakura.yaml"
    assert runner.invoke(args=["tenants", "export", "sakura-shinjuku", "-o", str(exported)]).exit_code == 0
    text = exported.read_text(encoding="utf-8")
    assert "recruitment_url: https://sakura-kai.example.jp/recruit/" in text
    assert "変更はありません / no changes" in apply(runner, exported).output
    edited = tmp_path / "edited.yaml"
    edited.write_text(text.replace("/online/", "/telemed/"), encoding="utf-8")
    assert "法人 sakura-kai.links" in apply(runner, edited).output
    again = tmp_path / "again.yaml"
    assert runner.invoke(args=["tenants", "export", "sakura-shinjuku", "-o", str(again)]).exit_code == 0
    assert again.read_text(encoding="utf-8") == edited.read_text(encoding="utf-8")


PARTIAL = """
version: 1
organization: {slug: hikari-kenshin, name: ひかり健診センター}
clinics:
  - slug: hikari-kenshin
    name: ひかり健診センター
    profile: {phone: 06-0000-0000}
    channel: {access_token_env: HIKARI_TOKEN_V2}
    autoreply:
      handoff: {reply: 担当者からお返事します。}
"""


def _hikari() -> Clinic:
    return db.session.scalars(sa.select(Clinic).where(Clinic.slug == "hikari-kenshin")).one()


def test_fields_a_manifest_does_not_mention_are_left_as_they_are(runner, tmp_path):
    """Re-applying a YAML must not disconnect a clinic: the demo's restart crashed on a blanked channel id."""
    from saas.autoreply.models import AutoReplySettings

    assert apply(runner, TENANTS / "hikari-kenshin.yaml").exit_code == 0
    with platform_scope("test"):
        clinic = _hikari()
        clinic.line_channel_id, clinic.line_channel_secret, clinic.line_access_token = "2001", "secret", "token"
        db.session.commit()
        before = export.clinic_spec(clinic)
    assert "変更はありません / no changes" in apply(runner, TENANTS / "hikari-kenshin.yaml").output
    partial = tmp_path / "partial.yaml"
    partial.write_text(PARTIAL, encoding="utf-8")
    result = apply(runner, partial)
    assert result.exit_code == 0, result.output
    with platform_scope("test"):
        clinic, after = _hikari(), export.clinic_spec(_hikari())
        settings = db.session.scalars(sa.select(AutoReplySettings)).one()
        source = db.session.scalars(sa.select(ChannelSecretSource)).one()
        assert (clinic.line_channel_id, clinic.line_channel_secret, clinic.line_access_token) == (
            "2001",
            "secret",
            "token",
        )
        assert clinic.phone == "06-0000-0000" and clinic.address == before.profile.address
        assert settings.handoff_reply == "担当者からお返事します。"
        assert settings.handoff_phrases == before.autoreply.handoff.phrases
        assert source.channel_secret_env == "HIKARI_KENSHIN_LINE_CHANNEL_SECRET"
        assert source.access_token_env == "HIKARI_TOKEN_V2"
    assert (after.schedule, after.autoreply.rules, after.autoreply.greeting) == (
        before.schedule,
        before.autoreply.rules,
        before.autoreply.greeting,
    )
    assert after.library == before.library


def test_a_field_the_manifest_mentions_is_applied_even_to_its_default(runner, tmp_path):
    assert apply(runner, TENANTS / "hikari-kenshin.yaml").exit_code == 0
    cleared = tmp_path / "cleared.yaml"
    cleared.write_text(PARTIAL.replace("{phone: 06-0000-0000}", '{parking: ""}'), encoding="utf-8")
    assert apply(runner, cleared).exit_code == 0
    with platform_scope("test"):
        assert _hikari().parking == "" and _hikari().phone == "06-6543-2100"


def test_an_agency_left_out_of_a_manifest_stays_the_organizations_agency(runner, tmp_path):
    assert apply(runner, TENANTS / "aoba-hifuka.yaml").exit_code == 0
    text = (TENANTS / "aoba-hifuka.yaml").read_text(encoding="utf-8")
    without_agency = tmp_path / "aoba.yaml"
    without_agency.write_text(
        text.replace("agency:\n  slug: mirai-support\n  name: みらいメディカルサポート株式会社\n", "")
    )
    assert apply(runner, without_agency).exit_code == 0
    with platform_scope("test"):
        organization = db.session.scalars(sa.select(Organization).where(Organization.slug == "aoba-derm")).one()
        assert organization.agency is not None and organization.agency.slug == "mirai-support"


def test_a_manifest_sets_the_emergency_keywords_and_exports_them_back(runner, tmp_path):
    edited = tmp_path / "hikari.yaml"
    text = (TENANTS / "hikari-kenshin.yaml").read_text(encoding="utf-8")
    edited.write_text(
        text.replace("    autoreply:\n", "    autoreply:\n      emergency_keywords: [胸が痛, 意識がない]\n", 1),
        encoding="utf-8",
    )
    result = apply(runner, edited)
    assert result.exit_code == 0 and "autoreply.emergency_keywords を更新" in result.output
    with platform_scope("test"):
        assert export.clinic_spec(_hikari()).autoreply.emergency_keywords == ["胸が痛", "意識がない"]
    assert (
        "変更はありません / no changes" in apply(runner, TENANTS / "hikari-kenshin.yaml").output
    )  # not mentioned: kept
