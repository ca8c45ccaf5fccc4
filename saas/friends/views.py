"""Friends pages: the searchable list and each friend's profile, tags and conversation."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, Response, after_this_request, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from saas.audit.services import record, record_conversation_view
from saas.common import parse_id
from saas.extensions import db
from saas.fields import services as fields
from saas.friends import consent, export, imports, services, tags
from saas.friends.models import Friend, FriendStatus, Tag
from saas.portal import dashboard, menu
from saas.sources.models import InflowSource
from saas.tenancy.access import can, current_clinic, require

bp = Blueprint("friends", __name__, url_prefix="/c/<clinic>/friends")

PER_PAGE = 50


def _date(name: str) -> date | None:
    try:
        return date.fromisoformat(request.args.get(name, ""))
    except ValueError:
        return None


def _filter_from_request() -> services.FriendFilter:
    return services.FriendFilter(
        query=request.args.get("q", "").strip()[:100],
        status=request.args.get("status", ""),
        tag_id=request.args.get("tag", type=parse_id),
        followed_from=_date("from"),
        followed_to=_date("to"),
    )


@bp.get("")
@login_required
@require("friends.view")
def index():
    """Search and filter the clinic's friends."""
    criteria = _filter_from_request()
    page = services.search_page(criteria, PER_PAGE, services.FriendCursor.parse(request.args.get("after")))
    args = {k: v for k, v in request.args.items() if k != "after" and v}
    return render_template(
        "friends/index.html",
        page=page,
        criteria=criteria,
        tags=services.clinic_tags(),
        statuses=FriendStatus,
        page_args=args,
    )


def _commit_after_rendering(response):
    db.session.commit()
    return response


def _friend_or_404(friend_id: int) -> Friend:
    return db.get_or_404(Friend, friend_id)  # another clinic's row is invisible: 404


@bp.get("/<int:friend_id>")
@login_required
@require("friends.view")
def detail(friend_id: int):
    """A friend's profile, tags and the conversation so far."""
    friend = _friend_or_404(friend_id)
    # Patients' messages are for the roles allowed to read them (two-factor sign-in).
    messages = services.conversation(friend) if can("chat.read") else None
    if messages is not None:  # committed after rendering: committing first expired every message shown
        record_conversation_view(friend.id, commit=False, page="friends.detail")
        after_this_request(_commit_after_rendering)
    return render_template(
        "friends/detail.html",
        friend=friend,
        messages=messages,
        tags=services.clinic_tags(),
        colors=services.TAG_COLORS,
        consent_history=consent.history(friend),
        friend_fields=fields.all_fields(),
        field_values=fields.values_by_key(friend),
        source=db.session.get(InflowSource, friend.inflow_source_id) if friend.inflow_source_id else None,
    )


@bp.post("/<int:friend_id>/consent")
@login_required
@require("friends.edit")
def change_consent(friend_id: int):
    """Staff change a friend's consent, with a reason (kept and audited)."""
    friend = _friend_or_404(friend_id)
    try:
        consent.change(
            friend,
            request.form.get("kind", ""),
            request.form.get("granted") == "yes",
            by="staff",
            reason=request.form.get("reason", ""),
            staff=current_user,
        )
    except consent.ConsentRefused:
        flash(_("同意を変更する理由を入力してください。"), "error")
        return redirect(url_for("friends.detail", friend_id=friend.id))
    db.session.commit()
    flash(_("配信の同意を変更しました。"), "success")
    return redirect(url_for("friends.detail", friend_id=friend.id))


@bp.post("/<int:friend_id>/tags")
@login_required
@require("friends.edit")
def add_tag(friend_id: int):
    """Tag the friend with an existing tag (tag_id) or a new one (name)."""
    friend = _friend_or_404(friend_id)
    name = request.form.get("name", "").strip()
    tag_id = request.form.get("tag_id", type=parse_id)
    tag = services.get_or_create_tag(name, request.form.get("color", "green")) if name else None
    if tag is None and tag_id:
        tag = next((t for t in services.clinic_tags() if t.id == tag_id), None)
    if tag is None:
        flash(_("タグを選ぶか、新しいタグ名を入力してください。"), "error")
    else:
        services.add_tag(friend, tag)
        db.session.commit()
        flash(_("タグ「%(name)s」を付けました。", name=tag.name), "success")
    return redirect(url_for("friends.detail", friend_id=friend.id))


@bp.post("/<int:friend_id>/tags/<int:tag_id>/remove")
@login_required
@require("friends.edit")
def remove_tag(friend_id: int, tag_id: int):
    """Take a tag off the friend."""
    friend = _friend_or_404(friend_id)
    services.remove_tag(friend, tag_id)
    db.session.commit()
    flash(_("タグを外しました。"), "success")
    return redirect(url_for("friends.detail", friend_id=friend.id))


@bp.get("/export.csv")
@login_required
@require("friends.export")
def export_csv():
    """Every friend of the clinic as CSV (audited: it is patient data leaving the system)."""
    text, count = export.friends_csv()
    record("friends.exported", target_type="friend", details={"rows": count}, commit=True)
    return Response(
        text.encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="friends.csv"', "Cache-Control": "no-store"},
    )


def _uploaded_text() -> str:
    upload = request.files.get("file")
    if upload and upload.filename:
        return upload.read(5 * 1024 * 1024).decode("utf-8-sig", errors="replace")
    return request.form.get("text", "")


@bp.route("/import", methods=["GET", "POST"])
@login_required
@require("friends.edit")
def import_csv():
    """Check a CSV of visits and friend fields line by line, then apply it all or nothing."""
    if request.method == "GET":
        return render_template("friends/import.html", plan=None, text="")
    text = _uploaded_text()
    if request.form.get("action") != "apply":
        return render_template("friends/import.html", plan=imports.plan(text), text=text)
    plan = imports.apply(text, current_clinic().id)
    if not plan.ok:
        db.session.rollback()
        return render_template("friends/import.html", plan=plan, text=text), 400
    record("friends.imported", target_type="friend", details={"rows": len(plan.lines)})
    db.session.commit()
    return render_template("friends/import.html", plan=plan, text="", applied=True)


TAG_PROBLEMS = {
    "name": _l("タグ名を入力してください（60文字以内）。"),
    "duplicate": _l("同じ名前のタグがすでにあります。統合する場合は「統合」を使ってください。"),
    "same": _l("統合先に同じタグは選べません。"),
}


def _tag_or_404(tag_id: int):
    return db.get_or_404(Tag, tag_id)


@bp.get("/tags")
@login_required
@require("friends.view")
def tag_list():
    """The clinic's tags with how many friends carry each."""
    return render_template(
        "friends/tags.html", rows=tags.with_counts(), colors=services.TAG_COLORS, color_labels=services.TAG_COLOR_LABELS
    )


def _tag_change(change, message: str, **audit):
    try:
        change()
    except tags.TagProblem as problem:
        db.session.rollback()
        flash(str(TAG_PROBLEMS[str(problem)]), "error")
        return redirect(url_for("friends.tag_list"))
    record("tag.changed", target_type="tag", details=audit)
    db.session.commit()
    flash(message, "success")
    return redirect(url_for("friends.tag_list"))


@bp.post("/tags/<int:tag_id>")
@login_required
@require("friends.edit")
def update_tag(tag_id: int):
    """Rename or recolour a tag."""
    tag = _tag_or_404(tag_id)
    name, color = request.form.get("name", ""), request.form.get("color", "")
    return _tag_change(
        lambda: tags.update(tag, name=name, color=color), _("タグを保存しました。"), tag=tag_id, name=name
    )


@bp.post("/tags/<int:tag_id>/merge")
@login_required
@require("friends.edit")
def merge_tag(tag_id: int):
    """Merge the tag into another one (its friends keep the other tag)."""
    tag = _tag_or_404(tag_id)
    target = _tag_or_404(request.form.get("into", type=parse_id) or 0)
    return _tag_change(
        lambda: tags.merge(tag, target),
        _("タグを「%(name)s」に統合しました。", name=target.name),
        merged=tag_id,
        into=target.id,
    )


@bp.post("/tags/<int:tag_id>/delete")
@login_required
@require("friends.edit")
def delete_tag(tag_id: int):
    """Delete the tag and take it off every friend."""
    tag = _tag_or_404(tag_id)
    return _tag_change(lambda: tags.delete(tag), _("タグを削除しました。"), deleted=tag_id, name=tag.name)


menu.register("friends.index", _l("友だち"), "☺", "friends.view", order=10)
dashboard.register("friends_following", _l("友だち（フォロー中）"), services.following_counts)
