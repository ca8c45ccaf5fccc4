"""Portal page: the library as this clinic inherits it, with override and revert per item."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.autoreply.answers import TemplateValues
from saas.extensions import db
from saas.library import services
from saas.library.models import LEVEL_LABELS, LibrarySet, SetKind
from saas.library.render import VARIABLES, render
from saas.portal.menu import register
from saas.tenancy.access import current_clinic, require

bp = Blueprint("library", __name__, url_prefix="/c/<clinic>/library")
register("library.browse", _l("ライブラリ"), "❏", "clinic.view", order=45)


@bp.get("/")
@login_required
@require("clinic.view")
def browse():
    """Every set the clinic inherits, each item with the level it comes from and a preview."""
    clinic = current_clinic()
    services.ensure_standard_library()
    db.session.commit()
    sets = [s for s in services.visible_sets(clinic) if s.kind != SetKind.SCENARIO]  # shown under ステップ配信
    items = services.resolve_items(clinic, sets)
    values = TemplateValues(clinic)
    return render_template(
        "library/browse.html",
        sets=sets,
        items_by_set={s.id: [i for i in items if i.library_set.id == s.id] for s in sets},
        subscribed=services.subscribed_set_ids(clinic.id),
        level_labels=LEVEL_LABELS,
        variables=VARIABLES,
        preview=lambda body: render(body, values),
        faq=SetKind.FAQ,
    )


def _visible_set(set_id: int) -> LibrarySet:
    library_set = db.session.get(LibrarySet, set_id)
    if library_set is None or library_set.id not in {s.id for s in services.visible_sets(current_clinic())}:
        abort(404)
    return library_set


@bp.post("/sets/<int:set_id>/subscription")
@login_required
@require("autoreply.edit")
def subscribe(set_id: int):
    library_set = _visible_set(set_id)
    on = request.form.get("subscribed") == "1"
    services.set_subscription(current_clinic(), library_set.id, on)
    db.session.commit()
    flash(
        _("「%(n)s」を自動応答に%(a)s。", n=library_set.name, a=_("使います") if on else _("使わなくしました")),
        "success",
    )
    return redirect(url_for("library.browse"))


@bp.post("/sets/<int:set_id>/items/<item_key>")
@login_required
@require("autoreply.edit")
def override(set_id: int, item_key: str):
    """Save the clinic's own version of an item."""
    library_set = _visible_set(set_id)
    keywords = [k.strip() for k in request.form.get("keywords", "").replace("、", "\n").splitlines() if k.strip()]
    services.set_override(
        current_clinic(), library_set.id, item_key, title=request.form.get("title", "").strip(),
        keywords=keywords, body=request.form.get("body", "").strip(), disabled=bool(request.form.get("disabled")),
    )  # fmt: skip
    db.session.commit()
    flash(_("このクリニック用に上書きしました。"), "success")
    return redirect(url_for("library.browse", _anchor=f"item-{set_id}-{item_key}"))


@bp.post("/sets/<int:set_id>/items/<item_key>/revert")
@login_required
@require("autoreply.edit")
def revert(set_id: int, item_key: str):
    """Drop the clinic's version: the inherited item applies again."""
    library_set = _visible_set(set_id)
    services.revert_override(current_clinic(), library_set.id, item_key)
    db.session.commit()
    flash(_("元の内容に戻しました。"), "success")
    return redirect(url_for("library.browse", _anchor=f"item-{set_id}-{item_key}"))
