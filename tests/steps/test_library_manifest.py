"""Scenarios as shared data: the standard library's two clinic scenarios (adopted into a clinic,
worded to the medical advertising rules), and ``step_scenarios`` in tenant manifests (apply,
export, re-apply without changes; a missing name applies nothing)."""

from __future__ import annotations

import re

import sqlalchemy as sa

from saas.extensions import db
from saas.library.models import SetKind
from saas.steps import library as step_library
from saas.steps.enrolments import steps_of
from saas.steps.models import ScenarioStep, StepScenario
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.conftest import csrf_token
from tests.factories import gen_clinic, gen_user
from tests.helpers import login

# 医療広告ガイドライン: superlatives and comparisons, promised results, price inducement, testimonials.
NOT_ALLOWED = re.compile(
    r"最高|最先端|日本一|No\.?1|絶対|必ず治|完治|確実に|安心・安全|円|無料|割引|キャンペーン|体験談|患者様の声"
)

MANIFEST = """
version: 1
organization: {slug: step-org, name: ステップ医療法人}
clinics:
  - slug: step-clinic
    name: ステップ皮膚科
    sources:
      - {name: 院内ポスター}
    step_scenarios:
      - key: beauty-intro
        name: 美容皮膚科のご紹介
        status: active
        trigger: follow
        trigger_source: 院内ポスター
        goals: [{kind: booked}, {kind: tag, tag: カウンセリング予約}]
        open_days_only: true
        steps:
          - name: ご挨拶
            delay: after_start
            after: 0
            unit: minutes
            messages: ["友だち追加ありがとうございます"]
            actions: [{kind: add_tag, tag: 美容関心}]
          - name: 院長紹介
            delay: day_at
            after: 1
            at: "10:00"
            messages: ["院長のご紹介です", {type: sticker, packageId: "446", stickerId: "1988"}]
            conditions: {match: all, rules: [{kind: tag, tag: 美容関心, has: true}]}
            otherwise: goto
            goto: 締め
          - name: コラム
            messages: ["スキンケアのコラムです"]
          - name: 締め
            after: 2
            messages: ["ご質問はトークでどうぞ"]
"""


def _apply(runner, path):
    return runner.invoke(args=["tenants", "apply", str(path)])


def test_the_standard_library_ships_two_compliant_clinic_scenarios_a_clinic_adopts(client):
    clinic = gen_clinic()
    login(client, gen_user("sender", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/steps/").get_data(as_text=True)
    assert "初診後フォロー" in page and "健診リマインド" in page
    with tenant_scope(clinic.id):
        shared = step_library.available(db.session.get(Clinic, clinic.id))
        texts = [m for entry in shared for step in entry.spec.steps for m in step.messages]
        set_id = shared[0].item.library_set.id
        db.session.rollback()
    assert [entry.item.title for entry in shared] == ["初診後フォロー", "健診リマインド"]
    assert all(entry.spec.goals == [{"kind": "booked"}] and len(entry.spec.steps) == 3 for entry in shared)
    assert shared[0].item.library_set.kind == SetKind.SCENARIO
    assert [t for t in texts if NOT_ALLOWED.search(t)] == []

    for _ in range(2):  # adopting twice keeps one copy
        adopted = client.post(
            f"/c/{clinic.slug}/steps/library/{set_id}/first-visit-follow-up", data={"csrf_token": csrf_token(client)}
        )
        assert adopted.status_code == 302
    with tenant_scope(clinic.id):
        copies = db.session.scalars(sa.select(StepScenario)).all()
        assert [(c.name, c.status, c.trigger) for c in copies] == [("初診後フォロー", "draft", "booking_completed")]
        assert [s.delay_kind for s in steps_of(copies[0].id)] == ["after_start", "day_at", "after_previous"]
    assert "追加済み・開く" in client.get(f"/c/{clinic.slug}/steps/").get_data(as_text=True)
    assert (
        client.post(
            f"/c/{clinic.slug}/steps/library/{set_id}/no-such-item", data={"csrf_token": csrf_token(client)}
        ).status_code
        == 404
    )
    assert "初診後フォロー" not in client.get(f"/c/{clinic.slug}/library/").get_data(
        as_text=True
    )  # not an FAQ/template


def test_scenarios_in_a_manifest_apply_export_and_reapply_without_changes(runner, tmp_path):
    source = tmp_path / "steps.yaml"
    source.write_text(MANIFEST, encoding="utf-8")
    first = _apply(runner, source)
    assert first.exit_code == 0, first.output
    with platform_scope("test"):
        clinic = db.session.scalar(sa.select(Clinic).where(Clinic.slug == "step-clinic"))
    with tenant_scope(clinic.id):
        scenario = db.session.scalar(sa.select(StepScenario))
        steps = steps_of(scenario.id)
        assert (scenario.status, scenario.trigger, scenario.trigger_source_id is not None) == ("active", "follow", True)
        assert [s.name for s in steps] == ["ご挨拶", "院長紹介", "コラム", "締め"]
        assert steps[1].goto_step_id == steps[3].id and steps[1].messages[1]["type"] == "sticker"
        assert steps[0].actions[0]["kind"] == "add_tag" and steps[0].actions[0]["tag_id"]
    assert "変更はありません / no changes" in _apply(runner, source).output

    exported = tmp_path / "exported.yaml"
    assert runner.invoke(args=["tenants", "export", "step-clinic", "-o", str(exported)]).exit_code == 0
    text = exported.read_text(encoding="utf-8")
    assert "step_scenarios:" in text and "美容関心" in text and "goto: 締め" in text and "tag_id" not in text
    assert "変更はありません / no changes" in _apply(runner, exported).output

    changed = tmp_path / "changed.yaml"
    changed.write_text(MANIFEST.replace("スキンケアのコラムです", "日焼け止めのコラムです"), encoding="utf-8")
    assert "美容皮膚科のご紹介" in _apply(runner, changed).output
    with tenant_scope(clinic.id):
        db.session.expire_all()
        assert db.session.scalar(sa.select(sa.func.count(ScenarioStep.id))) == 4  # updated in place
        assert steps_of(scenario.id)[2].messages == [{"type": "text", "text": "日焼け止めのコラムです"}]


def test_a_scenario_naming_a_missing_source_applies_nothing_and_names_the_path(runner, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(MANIFEST.replace("trigger_source: 院内ポスター", "trigger_source: 駅の看板"), encoding="utf-8")
    result = _apply(runner, broken)
    assert result.exit_code != 0 and "step_scenarios[0]" in result.output and "駅の看板" in result.output
    with platform_scope("test"):
        assert db.session.scalar(sa.select(sa.func.count(StepScenario.id))) == 0
