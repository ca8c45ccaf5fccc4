"""Form pages: the clinic's forms (build, open/close, delete), their answers for staff allowed to
read them (audited; sensitive answers only on request), the answers CSV, and the patient page."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.audit.services import record
from saas.common import parse_id
from saas.extensions import db
from saas.fields import services as fields
from saas.forms import editor, patient, presets, scenarios, segments, services
from saas.forms.models import Form, FormAnswer, FormPurpose, QuestionKind
from saas.forms.questions import shown
from saas.friends import services as friends
from saas.friends.models import Friend
from saas.portal import menu
from saas.tenancy.access import can, current_clinic, require

bp = Blueprint("forms", __name__)
staff = Blueprint("staff", __name__, url_prefix="/c/<clinic>/forms")
VIEW_ANSWERS = "forms.view_answers"

PURPOSES = {
    FormPurpose.INTAKE: _l("問診票（来院前）"),
    FormPurpose.SURVEY: _l("アンケート（来院後）"),
    FormPurpose.VACCINATION: _l("予防接種の希望"),
    FormPurpose.OTHER: _l("その他"),
}
KINDS = {
    QuestionKind.TEXT: _l("記述"),
    QuestionKind.NUMBER: _l("数値"),
    QuestionKind.DATE: _l("日付"),
    QuestionKind.CHOICE: _l("選択（1つ）"),
    QuestionKind.MULTI_CHOICE: _l("選択（複数）"),
    QuestionKind.CONSENT: _l("同意のチェック"),
}
CONSENTS = {
    "": _l("確認のみ（配信設定は変えない）"),
    "marketing": _l("お知らせの配信に同意"),
    "reminders": _l("リマインダーに同意"),
}


@bp.app_context_processor
def _segment_options() -> dict:
    """The segment builder and the friend page ask for forms when they render."""
    return {"answered_form_options": segments.options, "friend_form_answers": services.friend_answers}


def form_url(form: Form) -> str:
    """The link patients open (in a message or a rich menu area)."""
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/forms/{current_clinic().slug}/{form.token}"


def _form_or_404(form_id: int) -> Form:
    return db.get_or_404(Form, form_id)  # another clinic's form is invisible: 404


@staff.get("/")
@login_required
@require("friends.view")
def index():
    """The clinic's forms with their links and answer counts."""
    return render_template(
        "forms/index.html",
        forms=services.all_forms(),
        counts=services.answer_counts(),
        purposes=PURPOSES,
        form_url=form_url,
        presets=presets.PRESETS,
    )


def _edit_page(form: Form, status: int = 200):
    page = render_template(
        "forms/edit.html",
        form=form,
        purposes=PURPOSES,
        kinds=KINDS,
        consents=CONSENTS,
        friend_fields=fields.all_fields(),
        tag_names={tag.id: tag.name for tag in friends.clinic_tags()},
        tag_text=editor.tag_text,
        scenarios=scenarios.available(),
        blank_rows=2,
    )
    return page, status


def _scenario_id() -> int | None:
    chosen = request.form.get("scenario_id", type=parse_id)
    return chosen if chosen and chosen in {sid for sid, _name in scenarios.available()} else None


@staff.route("/new", methods=["GET", "POST"])
@staff.route("/<int:form_id>", methods=["GET", "POST"])
@login_required
@require("friends.edit")
def edit(form_id: int | None = None):
    """Build or change a form: its questions and what each answer writes."""
    form = _form_or_404(form_id) if form_id else Form(questions=[], purpose=FormPurpose.OTHER)
    if request.method == "GET":
        return _edit_page(form)
    try:
        services.save_form(
            form,
            name=request.form.get("name", ""),
            purpose=request.form.get("purpose", ""),
            description=request.form.get("description", ""),
            thanks=request.form.get("thanks", ""),
            questions=editor.read(request.form),
            scenario_id=_scenario_id(),
        )
    except services.FormProblem as problem:
        db.session.rollback()
        flash(str(problem), "error")
        return _edit_page(form, 400)
    record("form.saved", target_type="form", target_id=form.id, details={"name": form.name})
    db.session.commit()
    flash(_("フォーム「%(name)s」を保存しました。", name=form.name), "success")
    return redirect(url_for(".index"))


@staff.post("/preset/<key>")
@login_required
@require("friends.edit")
def from_preset(key: str):
    """Create a form from a standard one (標準の問診票 …)."""
    try:
        form = presets.create(key)
    except KeyError:
        abort(404)
    except services.FormProblem as problem:
        db.session.rollback()
        flash(str(problem), "error")
        return redirect(url_for(".index"))
    record("form.saved", target_type="form", target_id=form.id, details={"name": form.name})
    db.session.commit()
    flash(_("フォーム「%(name)s」を作成しました。内容を確認してください。", name=form.name), "success")
    return redirect(url_for(".edit", form_id=form.id))


@staff.post("/<int:form_id>/active")
@login_required
@require("friends.edit")
def toggle(form_id: int):
    """Close (or reopen) a form: a closed form's link answers 404, its answers stay."""
    form = _form_or_404(form_id)
    form.active = not form.active
    record("form.active", target_type="form", target_id=form.id, details={"active": form.active})
    db.session.commit()
    return redirect(url_for(".index"))


@staff.post("/<int:form_id>/delete")
@login_required
@require("friends.edit")
def delete(form_id: int):
    """Delete a form and every answer to it."""
    form = _form_or_404(form_id)
    record("form.deleted", target_type="form", target_id=form.id, details={"name": form.name})
    db.session.delete(form)
    db.session.commit()
    flash(_("フォームを削除しました。"), "success")
    return redirect(url_for(".index"))


def _include_sensitive() -> bool:
    return request.args.get("sensitive") == "1"


@staff.get("/<int:form_id>/answers")
@login_required
@require(VIEW_ANSWERS)
def answers(form_id: int):
    """The newest answers of a form (sensitive questions hidden until asked for; audited)."""
    form = _form_or_404(form_id)
    sensitive = _include_sensitive()
    rows = services.answer_rows(form, sensitive=sensitive)
    record(
        "form_answers.view",
        target_type="form",
        target_id=form.id,
        details={"rows": len(rows), "sensitive": sensitive},
        commit=True,
    )
    return render_template(
        "forms/answers.html",
        form=form,
        rows=rows,
        questions=services.visible_questions(form, sensitive=sensitive),
        sensitive=sensitive,
        has_sensitive=any(q.get("sensitive") for q in form.questions),
    )


@staff.get("/<int:form_id>/answers/<int:answer_id>")
@login_required
@require(VIEW_ANSWERS)
def answer(form_id: int, answer_id: int):
    """One answer in full, sensitive questions included (audited)."""
    form = _form_or_404(form_id)
    found = db.get_or_404(FormAnswer, answer_id)
    if found.form_id != form.id:
        abort(404)
    record("form_answer.view", target_type="friend", target_id=found.friend_id, details={"form": form.id}, commit=True)
    values = found.values
    items = [(q, shown(q, values.get(q["key"]))) for q in form.questions]
    return render_template(
        "forms/answer.html", form=form, answer=found, friend=db.session.get(Friend, found.friend_id), items=items
    )


@staff.get("/<int:form_id>/answers.csv")
@login_required
@require("friends.export")
def answers_csv(form_id: int):
    """The form's answers as CSV; sensitive questions only with ``?sensitive=1`` (audited).

    Patient data leaving the system: for those who may export friends and read answers."""
    if not can(VIEW_ANSWERS):
        abort(403)
    form = _form_or_404(form_id)
    sensitive = _include_sensitive()
    text, count = services.answers_csv(form, sensitive=sensitive)
    record(
        "form_answers.exported",
        target_type="form",
        target_id=form.id,
        details={"rows": count, "sensitive": sensitive},
        commit=True,
    )
    name = f"form-{form.id}-answers{'-sensitive' if sensitive else ''}.csv"
    return Response(
        text.encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


bp.register_blueprint(staff)
bp.register_blueprint(patient.bp)
menu.register("forms.staff.index", _l("フォーム"), "✎", "friends.view", order=14)
