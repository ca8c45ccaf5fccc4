"""The manifest section ``forms`` of a clinic (export and apply), and the standard forms' format.

Applied by name: new forms are added, listed ones updated, unlisted ones kept (their answers
hang on them). Questions name friend fields by key and tags by name, so a file reads the same
in every clinic; a question without a ``key`` keeps the key of the question at its position.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from saas.extensions import db
from saas.fields import services as fields
from saas.fields.models import FriendField
from saas.forms import services
from saas.forms.models import Form
from saas.friends import services as friends
from saas.manifests.schema import FormQuestionSpec, FormSpec
from saas.tenancy.scoping import platform_scope, tenant_scope


def question_specs(questions: list[dict]) -> list[FormQuestionSpec]:
    """Stored questions as manifest specs (field ids → keys, tag ids → names)."""
    field_keys = dict(db.session.execute(sa.select(FriendField.id, FriendField.key)).all())
    tag_names = {tag.id: tag.name for tag in friends.clinic_tags()}
    return [
        FormQuestionSpec(
            key=q["key"],
            label=q["label"],
            kind=q["kind"],
            required=q.get("required", False),
            choices=list(q.get("choices") or []),
            help=q.get("help", ""),
            field=field_keys.get(q.get("field_id"), ""),
            tags={c: tag_names[t] for c, t in (q.get("tags") or {}).items() if t in tag_names},
            visit=q.get("visit", False),
            consent=q.get("consent", ""),
            sensitive=q.get("sensitive", False),
        )
        for q in questions
    ]


def form_spec(form: Form) -> FormSpec:
    return FormSpec(
        name=form.name,
        purpose=form.purpose,
        description=form.description,
        thanks=form.thanks,
        token=form.token,
        active=form.active,
        questions=question_specs(form.questions),
    )


def raw_questions(specs: list[FormQuestionSpec], fail: Callable[[str, str], None], path: str) -> list[dict]:
    """Specs as the builder's question dicts (field keys → ids; tags created when new)."""
    rows = []
    for index, spec in enumerate(specs):
        field = fields.get_by_key(spec.field) if spec.field else None
        if spec.field and field is None:
            fail(f"{path}.questions[{index}].field", f"友だち項目「{spec.field}」がありません")
        row = spec.model_dump(exclude={"field", "tags"})
        row["field_id"] = field.id if field else None
        tags = {choice: name for choice, name in spec.tags.items() if name.strip()}
        row["tags"] = {choice: friends.get_or_create_tag(name).id for choice, name in tags.items()}
        rows.append(row)
    return rows


def export(clinic) -> dict:
    """``forms`` of the clinic as manifest specs."""
    with tenant_scope(clinic.id):
        return {"forms": [form_spec(form) for form in services.all_forms()]}


def _with_kept_keys(spec: FormSpec, form: Form) -> FormSpec:
    keys = [q["key"] for q in form.questions]
    questions = [
        q if q.key or index >= len(keys) else q.model_copy(update={"key": keys[index]})
        for index, q in enumerate(spec.questions)
    ]
    return spec.model_copy(update={"questions": questions, "token": spec.token or form.token})


def apply(clinic, spec, change: Callable[[str], None], fail: Callable[[str, str], None]) -> None:
    """Bring the clinic's forms in line with the manifest (the caller commits)."""
    db.session.flush()
    with tenant_scope(clinic.id):
        for index, form_spec_ in enumerate(spec.forms):
            _apply_form(clinic, form_spec_, f"forms[{index}]", change, fail)


def _apply_form(clinic, spec: FormSpec, path: str, change, fail) -> None:
    form = db.session.scalar(sa.select(Form).where(Form.name == spec.name))
    creating = form is None
    form = form or Form(clinic_id=clinic.id, questions=[])
    if not creating:
        spec = _with_kept_keys(spec, form)
        if spec == form_spec(form):
            return
    if spec.token:
        clash = sa.select(Form.id).where(Form.token == spec.token, Form.id != (form.id or 0))
        with platform_scope("manifest: a form token is unique across clinics"):
            if db.session.scalar(clash) is not None:
                fail(f"{path}.token", "この token は別のフォームで使われています")
        form.token = spec.token
    form.active = spec.active
    try:
        services.save_form(
            form,
            name=spec.name,
            purpose=spec.purpose,
            description=spec.description,
            thanks=spec.thanks,
            questions=raw_questions(spec.questions, fail, path),
            scenario_id=form.scenario_id,
        )
    except services.FormProblem as problem:
        fail(path, str(problem))
    change(f"forms: 「{spec.name}」を{'追加' if creating else '更新'}")
