"""Visit history on the friend page: record a visit at the desk, remove one recorded by mistake."""

from __future__ import annotations

from datetime import date

from flask import Blueprint, flash, redirect, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from saas.audit.services import record
from saas.extensions import db
from saas.friends.models import Friend
from saas.tenancy.access import require
from saas.visits import events, services  # noqa: F401  (events records kept bookings)
from saas.visits.models import Visit, VisitSource

bp = Blueprint("visits", __name__, url_prefix="/c/<clinic>/visits")

SOURCE_LABELS = {
    VisitSource.IMPORT: _l("CSV取り込み"),
    VisitSource.DESK: _l("受付で記録"),
    VisitSource.FORM: _l("フォームの回答"),
    VisitSource.BOOKING: _l("予約の来院"),
    VisitSource.CARD: _l("ショップカードのスタンプ"),
}


@bp.app_context_processor
def _friend_visits() -> dict:
    """The friend page shows the history (loaded only when it renders)."""
    return {"friend_visits": services.history, "visit_source_labels": SOURCE_LABELS, "today": services._today}


def _back(friend_id: int):
    return redirect(url_for("friends.detail", friend_id=friend_id) + "#visits")


@bp.post("/friend/<int:friend_id>")
@login_required
@require("friends.edit")
def add(friend_id: int):
    """Staff record a visit of the friend (today unless another day is given)."""
    friend = db.get_or_404(Friend, friend_id)  # another clinic's friend: 404
    try:
        day = date.fromisoformat(request.form.get("visited_on", "")) if request.form.get("visited_on") else None
    except ValueError:
        day = None
        flash(_("来院日は 2025-04-01 の形で入力してください。"), "error")
        return _back(friend.id)
    day = day or services._today()
    if day > services._today():
        flash(_("未来の日付は来院日にできません。"), "error")
        return _back(friend.id)
    if services.record(friend.id, friend.clinic_id, day, VisitSource.DESK, staff=current_user):
        record("visit.recorded", target_type="friend", target_id=friend.id, details={"day": day.isoformat()})
        flash(_("来院を記録しました。"), "success")
    else:
        flash(_("この日の来院はすでに記録されています。"), "info")
    db.session.commit()
    return _back(friend.id)


@bp.post("/<int:visit_id>/delete")
@login_required
@require("friends.edit")
def delete(visit_id: int):
    """Remove a visit recorded by mistake."""
    visit = db.get_or_404(Visit, visit_id)
    friend_id, day = visit.friend_id, visit.visited_on
    services.remove(visit)
    record("visit.deleted", target_type="friend", target_id=friend_id, details={"day": day.isoformat()})
    db.session.commit()
    flash(_("来院記録を削除しました。"), "success")
    return _back(friend_id)
