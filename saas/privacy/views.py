"""Privacy pages: a friend's data (export, erasure) and the clinic's sensitive-data settings."""

from __future__ import annotations

import json

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.audit.services import record
from saas.extensions import db
from saas.friends.models import Friend
from saas.portal import menu
from saas.privacy import sensitive, services
from saas.tenancy.access import current_clinic, require

bp = Blueprint("privacy", __name__, url_prefix="/c/<clinic>/privacy")
menu.register("privacy.settings", _l("要配慮情報の検知"), "⚠", "clinic.settings", order=85)

ERASE_CONFIRMATION = "削除"


def _friend_or_404(friend_id: int) -> Friend:
    return db.get_or_404(Friend, friend_id)  # another clinic's row is invisible: 404


@bp.get("/friends/<int:friend_id>")
@login_required
@require("friends.export")
def friend_data(friend_id: int):
    """The friend's data rights page: export buttons and the erasure form."""
    friend = _friend_or_404(friend_id)
    return render_template("privacy/friend.html", friend=friend, confirmation=ERASE_CONFIRMATION)


@bp.get("/friends/<int:friend_id>/export.<fmt>")
@login_required
@require("friends.export")
def export(friend_id: int, fmt: str):
    """Download everything held about the friend as JSON or CSV (audited)."""
    if fmt not in ("json", "csv"):
        abort(404)
    friend = _friend_or_404(friend_id)
    data = services.export_data(friend)
    record("friends.export", target_type="friend", target_id=friend.id, details={"format": fmt})
    db.session.commit()
    if fmt == "json":
        body, mimetype = json.dumps(data, ensure_ascii=False, indent=2), "application/json"
    else:
        body, mimetype = services.export_csv(data), "text/csv"
    filename = f"friend-{friend.id}.{fmt}"
    return Response(body, mimetype=mimetype, headers={"Content-Disposition": f"attachment; filename={filename}"})


@bp.post("/friends/<int:friend_id>/erase")
@login_required
@require("friends.export")
def erase(friend_id: int):
    """Erase the friend's data after the typed confirmation (audited, ids only)."""
    friend = _friend_or_404(friend_id)
    if friend.status == services.ERASED:
        flash(_("この友だちのデータは削除済みです。"), "info")
        return redirect(url_for("privacy.friend_data", friend_id=friend.id))
    if request.form.get("confirmation", "").strip() != ERASE_CONFIRMATION:
        flash(_("確認のため「%(word)s」と入力してください。", word=ERASE_CONFIRMATION), "error")
        return redirect(url_for("privacy.friend_data", friend_id=friend.id))
    removed = services.erase(friend)
    record("friends.erase", target_type="friend", target_id=friend.id, details={"removed": removed})
    db.session.commit()
    flash(_("友だちのデータを削除しました（メッセージ %(n)s件）。", n=removed["messages"]), "success")
    return redirect(url_for("privacy.friend_data", friend_id=friend.id))


@bp.route("/settings", methods=["GET", "POST"])
@login_required
@require("clinic.settings")
def settings():
    """Sensitive-data patterns, keywords and the privacy note shown in the chat composer."""
    clinic = current_clinic()
    row = sensitive.get_settings(clinic.id)
    shown = row or sensitive.default_settings()
    errors: list[str] = []
    patterns_text = sensitive.format_patterns(shown.patterns or [])
    if request.method == "POST":
        patterns_text = request.form.get("patterns", "")
        patterns, errors = sensitive.parse_patterns(patterns_text)
        if not errors:
            row = row or sensitive.get_settings(clinic.id, create=True)
            row.patterns = patterns
            row.keywords = [w.strip() for w in request.form.get("keywords", "").splitlines() if w.strip()][:200]
            row.privacy_note = request.form.get("privacy_note", "").strip()[:2000]
            record("privacy.settings", target_type="privacy_settings", details={"patterns": len(patterns)})
            db.session.commit()
            flash(_("要配慮情報の設定を保存しました。"), "success")
            return redirect(url_for("privacy.settings"))
    status = 422 if errors else 200
    return render_template("privacy/settings.html", row=shown, patterns_text=patterns_text, errors=errors), status
