"""Pages outside any clinic for agency and organization (and platform) administrators:
the shared FAQ/template library of their level, and the organization's group-wide menu links.

The tenant scope here is every clinic the user sees, which says nothing about administering a
level, so each view checks an owner/admin membership covering the level explicitly.
"""

from __future__ import annotations

import functools

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from saas.audit.services import record
from saas.extensions import db
from saas.groups import notice_views, publish_views, services, sso_views
from saas.library.models import Level, LibrarySet, SetKind
from saas.library.render import VARIABLES
from saas.richmenu.services import get_organization_links, set_organization_links

bp = Blueprint("groups", __name__)
bp.register_blueprint(notice_views.bp)
bp.register_blueprint(sso_views.bp)
bp.register_blueprint(publish_views.bp)
LINK_FIELDS = ("recruitment_url", "online_consultation_url")


@bp.app_context_processor
def shared_administration():
    """Template helpers: the levels the user administers, and the editable level above a clinic."""

    def editable_level(clinic, level: str):
        shared = services.level_of_clinic(clinic, level)
        return shared if services.can_manage(current_user, shared) else None

    return {"managed_levels": lambda: services.managed_levels(current_user), "editable_level": editable_level}


def managed_level(view):
    """Resolve ``<level>/<slug>`` to g.shared; 404 unless the user administers that level."""

    @functools.wraps(view)
    def wrapped(level: str, slug: str, **kwargs):
        shared = services.find_level(level, slug)
        if not services.can_manage(current_user, shared):
            abort(404)  # another organization's library is not even acknowledged
        g.shared = shared
        return view(**kwargs)

    return wrapped


def _audit(action: str, target_type: str, target_id, **details) -> None:
    record(action, target_type=target_type, target_id=target_id, details={"owner": g.shared.key, **details})


def _keywords(form) -> list[str]:
    return [k.strip() for k in form.get("keywords", "").replace("、", "\n").splitlines() if k.strip()]


def _back(anchor: str | None = None):
    return redirect(url_for(".library", level=g.shared.level, slug=g.shared.slug, _anchor=anchor))


@bp.get("/library/<level>/<slug>/")
@login_required
@managed_level
def library():
    """This level's sets and items, with forms to add, edit and delete them."""
    items = services.owned_items(g.shared)
    sets = services.owned_sets(g.shared)
    foreign_set_ids = {i.set_id for i in items} - {s.id for s in sets}
    return render_template(
        "groups/library.html",
        shared=g.shared,
        sets=sets,
        foreign_sets=[db.session.get(LibrarySet, set_id) for set_id in sorted(foreign_set_ids)],
        items_by_set={set_id: [i for i in items if i.set_id == set_id] for set_id in {i.set_id for i in items}},
        faq=SetKind.FAQ,
        kinds={SetKind.FAQ: _("FAQ"), SetKind.TEMPLATE: _("テンプレート")},
        variables=VARIABLES,
    )


@bp.post("/library/<level>/<slug>/sets")
@login_required
@managed_level
def create_set():
    name, kind = request.form.get("name", "").strip(), request.form.get("kind", SetKind.FAQ)
    if not name or kind not in (SetKind.FAQ, SetKind.TEMPLATE):
        flash(_("セット名と種類を入力してください。"), "danger")
        return _back()
    library_set = services.create_set(g.shared, kind, name[:200], request.form.get("description", "").strip())
    _audit("library.set.create", "library_set", library_set.id, name=library_set.name, kind=kind)
    db.session.commit()
    flash(_("「%(n)s」を作成しました。", n=library_set.name), "success")
    return _back(f"set-{library_set.id}")


def _owned_set(set_id: int):
    library_set = services.owned_set(g.shared, set_id)
    if library_set is None:
        abort(404)
    return library_set


@bp.post("/library/<level>/<slug>/sets/<int:set_id>")
@login_required
@managed_level
def update_set(set_id: int):
    library_set = _owned_set(set_id)
    name = request.form.get("name", "").strip()[:200] or library_set.name
    services.update_set(g.shared, library_set, name, request.form.get("description", "").strip())
    _audit("library.set.update", "library_set", library_set.id, name=name)
    db.session.commit()
    flash(_("保存しました。"), "success")
    return _back(f"set-{set_id}")


@bp.post("/library/<level>/<slug>/sets/<int:set_id>/delete")
@login_required
@managed_level
def delete_set(set_id: int):
    library_set = _owned_set(set_id)
    _audit("library.set.delete", "library_set", library_set.id, name=library_set.name)
    services.delete_set(g.shared, library_set)
    db.session.commit()
    flash(_("「%(n)s」を削除しました。", n=library_set.name), "success")
    return _back()


def _item_fields(form) -> dict | None:
    title = form.get("title", "").strip()[:200]
    if not title:
        return None
    return {
        "title": title,
        "category": form.get("category", "").strip()[:80],
        "keywords": _keywords(form),
        "body": form.get("body", "").strip(),
    }


@bp.post("/library/<level>/<slug>/sets/<int:set_id>/items")
@login_required
@managed_level
def add_item(set_id: int):
    library_set = _owned_set(set_id)
    fields = _item_fields(request.form)
    if fields is None:
        flash(_("タイトルを入力してください。"), "danger")
        return _back(f"set-{set_id}")
    item = services.save_item(g.shared, library_set.id, None, **fields)
    _audit("library.item.create", "library_item", item.id, set_id=set_id, title=item.title)
    db.session.commit()
    flash(_("「%(n)s」を追加しました。", n=item.title), "success")
    return _back(f"item-{set_id}-{item.item_key}")


def _owned_item(set_id: int, item_key: str):
    item = services.owned_item(g.shared, set_id, item_key)
    if item is None:
        abort(404)
    return item


@bp.post("/library/<level>/<slug>/sets/<int:set_id>/items/<item_key>")
@login_required
@managed_level
def update_item(set_id: int, item_key: str):
    item, fields = _owned_item(set_id, item_key), _item_fields(request.form)
    if fields is None:
        flash(_("タイトルを入力してください。"), "danger")
        return _back(f"item-{set_id}-{item_key}")
    services.save_item(g.shared, set_id, item, **fields)
    _audit("library.item.update", "library_item", item.id, set_id=set_id, title=item.title)
    db.session.commit()
    flash(_("保存しました。下位のクリニックにも反映されます。"), "success")
    return _back(f"item-{set_id}-{item_key}")


@bp.post("/library/<level>/<slug>/sets/<int:set_id>/items/<item_key>/delete")
@login_required
@managed_level
def delete_item(set_id: int, item_key: str):
    item = _owned_item(set_id, item_key)
    _audit("library.item.delete", "library_item", item.id, set_id=set_id, title=item.title)
    services.delete_item(g.shared, item)
    db.session.commit()
    flash(_("「%(n)s」を削除しました。", n=item.title), "success")
    return _back(f"set-{set_id}")


@bp.route("/organizations/<slug>/links", methods=["GET", "POST"])
@login_required
def organization_links(slug: str):
    """採用情報・オンライン診療 URLs every branch's rich menu uses unless the clinic sets its own."""
    shared = services.find_level(Level.ORGANIZATION, slug)
    if not services.can_manage(current_user, shared):
        abort(404)
    links = get_organization_links(shared.id)
    if request.method == "POST":
        urls = {field: request.form.get(field, "").strip() for field in LINK_FIELDS}
        if any(value and not value.startswith("https://") for value in urls.values()):
            flash(_("URLは https:// で始めてください"), "danger")
            return redirect(url_for(".organization_links", slug=slug))
        set_organization_links(shared.id, **urls)
        record("organization.links.update", target_type="organization", target_id=shared.id, details=urls)
        db.session.commit()
        flash(_("法人共通のリンクを保存しました。各院のリッチメニューは次回の反映から使います。"), "success")
        return redirect(url_for(".organization_links", slug=slug))
    return render_template("groups/links.html", shared=shared, links=links)
