"""Portal pages: rich menu list, the layout editor with a live preview, image upload, deploy."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.audit.services import record
from saas.extensions import db
from saas.friends.models import Tag
from saas.line.errors import LineError
from saas.portal.menu import register
from saas.richmenu import layouts, render, services
from saas.richmenu.models import SIZES, RichMenu
from saas.security.limits import body_limit
from saas.tenancy.access import current_clinic, require

bp = Blueprint("richmenu", __name__, url_prefix="/c/<clinic>/richmenus")
register("richmenu.index", _l("リッチメニュー"), "▤", "clinic.view", order=38)
MAX_AREAS = 20
UPLOAD_LIMIT_BYTES = render.MAX_BYTES + 64 * 1024  # the image (LINE: 1 MB) and the form around it
VALUE_KEYS = {"uri": "uri", "message": "text", "postback": "data", "richmenuswitch": "richMenuAliasId"}


def _menu(menu_id: int) -> RichMenu:
    return db.get_or_404(RichMenu, menu_id)  # another clinic's row is invisible: 404


@bp.route("/", methods=["GET", "POST"])
@login_required
@require("clinic.view")
def index():
    """The clinic's menus, presets to start from, and the links areas bind to."""
    clinic = current_clinic()
    links = services.get_links(clinic.id)
    if request.method == "POST":
        if not _can_edit():
            abort(403)
        for field in ("recruitment_url", "online_consultation_url", "access_url"):
            value = request.form.get(field, "").strip()
            if value and not value.startswith("https://"):
                flash(_("URLは https:// で始めてください"), "danger")
                return redirect(url_for(".index"))
            setattr(links, field, value)
        db.session.commit()
        flash(_("リンクを保存しました。"), "success")
        return redirect(url_for(".index"))
    db.session.commit()
    menus = db.session.scalars(sa.select(RichMenu).order_by(RichMenu.id)).all()
    return render_template(
        "richmenu/index.html",
        menus=menus,
        presets=layouts.PRESETS,
        links=links,
        org_links=services.get_organization_links(clinic.organization_id),
    )


def _can_edit() -> bool:
    from saas.tenancy.access import can

    return can("richmenu.edit")


@bp.post("/new")
@login_required
@require("richmenu.edit")
def create():
    """A new menu from a preset layout bound to the usual features."""
    preset = request.form.get("preset", "full6")
    if preset not in layouts.PRESETS:
        abort(400)
    size, areas = layouts.preset_areas(preset)
    menu = RichMenu(name=request.form.get("name", "").strip() or layouts.PRESETS[preset][0], size=size, areas=areas)
    db.session.add(menu)
    db.session.commit()
    return redirect(url_for(".edit", menu_id=menu.id))


def _areas_from_form(form) -> list[dict]:
    areas = []
    for index in range(MAX_AREAS):
        label = form.get(f"a{index}_label", "").strip()
        if not label:
            continue
        try:
            bounds = {k: int(form.get(f"a{index}_{k}", "")) for k in ("x", "y", "width", "height")}
        except ValueError as exc:
            raise services.MenuProblem(_("「%(label)s」の位置と大きさは数字で入力してください", label=label)) from exc
        kind = form.get(f"a{index}_type", "")
        if kind not in VALUE_KEYS:
            raise services.MenuProblem(_("「%(label)s」のアクションを選んでください", label=label))
        action = {"type": kind, VALUE_KEYS[kind]: form.get(f"a{index}_value", "").strip()}
        areas.append({**bounds, "label": label, "action": action})
    return areas


@bp.route("/<int:menu_id>", methods=["GET", "POST"])
@login_required
@require("clinic.view")
def edit(menu_id: int):
    """Edit areas (bounds, label, action) with a live preview; save, upload an image, deploy."""
    menu, clinic = _menu(menu_id), current_clinic()
    if request.method == "POST":
        if not _can_edit():
            abort(403)
        try:
            _apply(menu, request.form)
            services.line_menu(menu, clinic)  # refuse now what LINE would refuse at deploy time
        except services.MenuProblem as exc:
            db.session.rollback()
            flash(str(exc), "danger")
            return redirect(url_for(".edit", menu_id=menu_id))
        db.session.commit()
        flash(_("保存しました。"), "success")
        return redirect(url_for(".edit", menu_id=menu_id))
    return render_template(
        "richmenu/edit.html",
        menu=menu,
        sizes=SIZES,
        rows=list(menu.areas) + [{}] * max(0, min(3, MAX_AREAS - len(menu.areas))),
        value_keys=VALUE_KEYS,
        features=layouts.FEATURES,
        tags=db.session.scalars(sa.select(Tag).order_by(Tag.name)).all(),
    )


def _apply(menu: RichMenu, form) -> None:
    size = form.get("size", menu.size)
    if size not in SIZES:
        raise services.MenuProblem(_("サイズを選んでください"))
    alias = form.get("alias_id", "").strip()
    if alias and not services.ALIAS_RE.match(alias):
        raise services.MenuProblem(_("エイリアスは半角英小文字・数字・-_ の32文字以内です"))
    tag_id = int(form["segment_tag_id"]) if form.get("segment_tag_id", "").isdigit() else None
    if tag_id is not None and db.session.get(Tag, tag_id) is None:
        abort(400)
    menu.name = form.get("name", "").strip()[:120] or menu.name
    menu.size, menu.alias_id, menu.segment_tag_id = size, alias, tag_id
    menu.chat_bar_text = form.get("chat_bar_text", "").strip()[:14] or "メニュー"
    menu.areas = _areas_from_form(form)
    if form.get("is_default") and not menu.is_default:
        db.session.execute(sa.update(RichMenu).where(RichMenu.id != menu.id).values(is_default=False))
    menu.is_default = bool(form.get("is_default"))
    if menu.image and size != menu.size:
        menu.image, menu.image_type = None, ""


@bp.get("/<int:menu_id>/image.png")
@login_required
@require("clinic.view")
def image(menu_id: int):
    """The image that will be uploaded (the upload, or rendered from the layout)."""
    data, content_type = services.menu_image(_menu(menu_id))
    return Response(data, mimetype=content_type)


@bp.post("/<int:menu_id>/image")
@body_limit(UPLOAD_LIMIT_BYTES)
@login_required
@require("richmenu.edit")
def upload(menu_id: int):
    """Use an uploaded PNG/JPEG (≤1 MB, exactly the menu's size) instead of the rendered one."""
    menu = _menu(menu_id)
    if request.form.get("remove"):
        menu.image, menu.image_type = None, ""
    else:
        data = (request.files.get("image") or None) and request.files["image"].read()
        try:
            menu.image_type = render.check_upload(data or b"", *menu.dimensions)
            menu.image = data
        except render.ImageRejected as exc:
            flash(str(exc), "danger")
            return redirect(url_for(".edit", menu_id=menu_id))
    db.session.commit()
    return redirect(url_for(".edit", menu_id=menu_id))


@bp.post("/<int:menu_id>/deploy")
@login_required
@require("richmenu.edit")
def deploy(menu_id: int):
    """Publish the menu to LINE."""
    menu, clinic = _menu(menu_id), current_clinic()
    try:
        result = services.deploy(clinic, menu)
    except services.MenuProblem as exc:
        flash(str(exc), "danger")
    except LineError as exc:
        flash(_("LINEに反映できませんでした: %(error)s", error=exc.message), "danger")
    else:
        record("richmenu.deploy", clinic_id=clinic.id, target_type="richmenu", target_id=menu.id, commit=True)
        flash(_("LINEに反映しました（友だち%(n)s人に個別設定）。", n=result.linked_friends), "success")
    return redirect(url_for(".edit", menu_id=menu_id))
