"""Friends pages: the searchable list and each friend's profile, tags and conversation."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.extensions import db
from saas.friends import services
from saas.friends.models import Friend, FriendStatus
from saas.portal import dashboard, menu
from saas.tenancy.access import can, require

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
        tag_id=request.args.get("tag", type=int),
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


def _friend_or_404(friend_id: int) -> Friend:
    return db.get_or_404(Friend, friend_id)  # another clinic's row is invisible: 404


@bp.get("/<int:friend_id>")
@login_required
@require("friends.view")
def detail(friend_id: int):
    """A friend's profile, tags and the conversation so far."""
    friend = _friend_or_404(friend_id)
    return render_template(
        "friends/detail.html",
        friend=friend,
        # Patients' messages are for the roles allowed to read them (two-factor sign-in).
        messages=services.conversation(friend) if can("chat.read") else None,
        tags=services.clinic_tags(),
        colors=services.TAG_COLORS,
    )


@bp.post("/<int:friend_id>/tags")
@login_required
@require("friends.edit")
def add_tag(friend_id: int):
    """Tag the friend with an existing tag (tag_id) or a new one (name)."""
    friend = _friend_or_404(friend_id)
    name = request.form.get("name", "").strip()
    tag_id = request.form.get("tag_id", type=int)
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


menu.register("friends.index", _l("友だち"), "☺", "friends.view", order=10)
dashboard.register("friends_following", _l("友だち（フォロー中）"), services.following_counts)
