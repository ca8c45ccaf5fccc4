"""Manifests carry a clinic's forms: apply, export back, re-apply without changes; bad ones name the path."""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db
from saas.fields.models import FriendField
from saas.forms.models import Form
from saas.friends.models import Tag
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope

MANIFEST = """
version: 1
organization: {slug: forms-org, name: フォーム医療法人}
clinics:
  - slug: forms-clinic
    name: フォーム内科
    friend_fields:
      - {key: age_band, label: 年代, kind: choice, choices: [30代, 40代]}
    forms:
      - name: 予防接種の希望
        purpose: vaccination
        token: vaccine-form-01
        questions:
          - {label: ご希望, kind: multi_choice, required: true, choices: [インフルエンザ, 新型コロナ], tags: {インフルエンザ: インフル希望}}
          - {label: 年代, kind: choice, choices: [30代, 40代], field: age_band}
          - {label: 服用中のお薬, sensitive: true}
          - {label: お知らせを受け取る, kind: consent, consent: marketing}
"""


def _apply(runner, path):
    return runner.invoke(args=["tenants", "apply", str(path)])


def _clinic() -> Clinic:
    with platform_scope("test"):
        return db.session.scalar(sa.select(Clinic).where(Clinic.slug == "forms-clinic"))


def test_forms_apply_export_and_reapply_without_changes(runner, tmp_path):
    source = tmp_path / "forms.yaml"
    source.write_text(MANIFEST, encoding="utf-8")
    first = _apply(runner, source)
    assert first.exit_code == 0, first.output
    assert "forms: 「予防接種の希望」を追加" in first.output
    clinic = _clinic()
    with tenant_scope(clinic.id):
        form = db.session.scalar(sa.select(Form))
        tag = db.session.scalar(sa.select(Tag).where(Tag.name == "インフル希望"))
        field = db.session.scalar(sa.select(FriendField).where(FriendField.key == "age_band"))
        assert form.token == "vaccine-form-01" and form.purpose == "vaccination"
        assert [q["key"] for q in form.questions] == ["q1", "q2", "q3", "q4"]
        assert form.questions[0]["tags"] == {"インフルエンザ": tag.id} and form.questions[1]["field_id"] == field.id
        assert form.questions[2]["sensitive"] and form.questions[3]["consent"] == "marketing"
    assert "変更はありません / no changes" in _apply(runner, source).output

    exported = tmp_path / "exported.yaml"
    assert runner.invoke(args=["tenants", "export", "forms-clinic", "-o", str(exported)]).exit_code == 0
    text = exported.read_text(encoding="utf-8")
    assert "forms:" in text and "vaccine-form-01" in text and "インフル希望" in text and "field: age_band" in text
    assert "変更はありません / no changes" in _apply(runner, exported).output

    changed = tmp_path / "changed.yaml"
    changed.write_text(MANIFEST.replace("ご希望, kind", "ご希望のワクチン, kind"), encoding="utf-8")
    assert "forms: 「予防接種の希望」を更新" in _apply(runner, changed).output
    with tenant_scope(clinic.id):
        db.session.expire_all()
        form = db.session.scalar(sa.select(Form))
        assert form.questions[0]["label"] == "ご希望のワクチン" and form.questions[0]["key"] == "q1"


def test_a_form_naming_a_missing_field_applies_nothing_and_names_the_path(runner, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(MANIFEST.replace("field: age_band", "field: blood_type"), encoding="utf-8")
    result = _apply(runner, broken)
    assert result.exit_code != 0 and "forms[0].questions[1].field" in result.output
    with platform_scope("test"):
        assert db.session.scalar(sa.select(sa.func.count(Form.id))) == 0


def test_a_sensitive_question_mapped_to_a_field_is_refused(runner, tmp_path):
    broken = tmp_path / "sensitive.yaml"
    broken.write_text(MANIFEST.replace("field: age_band}", "field: age_band, sensitive: true}"), encoding="utf-8")
    result = _apply(runner, broken)
    assert result.exit_code != 0 and "要配慮個人情報" in result.output
