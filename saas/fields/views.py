"""Friend field pages: the clinic's fields (define, change, delete) and a friend's values."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.audit.services import record
from saas.extensions import db
from saas.fields import segments, services
from saas.fields.models import FieldKind, FriendField
from saas.friends.models import Friend
from saas.portal import menu
from saas.tenancy.access import require

bp = Blueprint("fields", __name__, url_prefix="/c/<clinic>/fields")

KIND_LABELS = {
    FieldKind.TEXT: _l("テキスト"),
    FieldKind.NUMBER: _l("数値"),
    FieldKind.DATE: _l("日付"),
    FieldKind.CHOICE: _l("選択（1つ）"),
    FieldKind.MULTI_CHOICE: _l("選択（複数）"),
}


@bp.app_context_processor
def _segment_options() -> dict:
    """The segment builder (delivery form) asks for the clinic's fields and sources when it renders."""
    return {"segment_options": segments.options}


def _field_or_404(field_id: int) -> FriendField:
    return db.get_or_404(FriendField, field_id)  # another clinic's field is invisible: 404


def _page(field: FriendField | None = None, status: int = 200):
    return render_template("fields/index.html", fields=services.all_fields(), editing=field, kinds=KIND_LABELS), status


@bp.get("/")
@login_required
@require("friends.view")
def index():
    """The clinic's friend fields."""
    return _page()[0]


@bp.get("/<int:field_id>")
@login_required
@require("friends.edit")
def edit(field_id: int):
    """The form to change one field."""
    return _page(_field_or_404(field_id))[0]


@bp.post("/")
@bp.post("/<int:field_id>")
@login_required
@require("friends.edit")
def save(field_id: int | None = None):
    """Create or change a field (key, label, kind, choices)."""
    field = _field_or_404(field_id) if field_id else FriendField()
    try:
        services.save_field(
            field,
            key=request.form.get("key", ""),
            label=request.form.get("label", ""),
            kind=request.form.get("kind", ""),
            choices=request.form.get("choices", ""),
        )
    except services.FieldProblem as problem:
        db.session.rollback()
        flash(str(problem), "error")
        return _page(field if field_id else None, 400)
    record("field.saved", target_type="friend_field", target_id=field.id, details={"key": field.key})
    db.session.commit()
    flash(_("項目「%(label)s」を保存しました。", label=field.label), "success")
    return redirect(url_for(".index"))


@bp.post("/<int:field_id>/delete")
@login_required
@require("friends.edit")
def delete(field_id: int):
    """Delete a field and every friend's value of it."""
    field = _field_or_404(field_id)
    record("field.deleted", target_type="friend_field", target_id=field.id, details={"key": field.key})
    db.session.delete(field)
    db.session.commit()
    flash(_("項目を削除しました。"), "success")
    return redirect(url_for(".index"))


@bp.post("/friend/<int:friend_id>")
@login_required
@require("friends.edit")
def set_values(friend_id: int):
    """Save a friend's field values from the friend page (all or nothing)."""
    friend = db.get_or_404(Friend, friend_id)
    fields = services.all_fields()
    try:
        parsed = {field.id: services.parse(field, _submitted(field)) for field in fields}
    except services.FieldProblem as problem:
        flash(str(problem), "error")
        return redirect(url_for("friends.detail", friend_id=friend.id))
    for field_id, rows in parsed.items():
        services.write_rows(friend.id, friend.clinic_id, field_id, rows)
    record("friend.fields_changed", target_type="friend", target_id=friend.id)
    db.session.commit()
    flash(_("項目を保存しました。"), "success")
    return redirect(url_for("friends.detail", friend_id=friend.id))


def _submitted(field: FriendField):
    name = f"field_{field.id}"
    return request.form.getlist(name) if field.kind == FieldKind.MULTI_CHOICE else request.form.get(name, "")


menu.register("fields.index", _l("友だち項目"), "≡", "friends.view", order=13)
