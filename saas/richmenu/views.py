"""Portal pages: rich menu list, the layout editor with a live preview, image upload, deploy."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.adcheck.gate import gate as adcheck_gate
from saas.audit.services import record
from saas.common import parse_id
from saas.extensions import db
from saas.friends.models import Tag
from saas.line.errors import LineError
from saas.portal.menu import register
from saas.richmenu import layouts, render, segments, services  # noqa: F401  (segments follows tag changes)
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


def _cell_number(form, name: str, label: str, limit: int) -> int:
    value = form.get(name, "")
    number = parse_id(value)
    if number is None or not 1 <= number <= limit:
        raise services.MenuProblem(_("「%(label)s」の位置を選んでください", label=label))
    return number - 1


def _cells_from_form(form, index: int, label: str, size: str) -> layouts.Cells:
    """The grid cells an area covers, from its 列/行 selects (first and last, 1-based)."""
    rows = layouts.GRID_ROWS[size]
    first_column = _cell_number(form, f"a{index}_col_from", label, layouts.GRID_COLUMNS)
    last_column = _cell_number(form, f"a{index}_col_to", label, layouts.GRID_COLUMNS)
    first_row = _cell_number(form, f"a{index}_row_from", label, rows)
    last_row = _cell_number(form, f"a{index}_row_to", label, rows)
    if last_column < first_column or last_row < first_row:
        raise services.MenuProblem(_("「%(label)s」の終わりの列・行が始まりより前です", label=label))
    return layouts.Cells(first_column, first_row, last_column - first_column + 1, last_row - first_row + 1)


def _action_from_form(form, index: int, label: str) -> tuple[str, dict]:
    """(feature, action): a clinic feature (予約, 診療時間 …) or a custom link/message/tab."""
    choice = form.get(f"a{index}_action", "")
    if choice.startswith("feature:") and choice[8:] in layouts.FEATURES:
        return choice[8:], dict(layouts.FEATURES[choice[8:]][1])
    if choice not in VALUE_KEYS:
        raise services.MenuProblem(_("「%(label)s」のアクションを選んでください", label=label))
    return "", {"type": choice, VALUE_KEYS[choice]: form.get(f"a{index}_value", "").strip()}


def _overlap(first: layouts.Cells, second: layouts.Cells) -> bool:
    return not (
        first.column + first.columns <= second.column
        or second.column + second.columns <= first.column
        or first.row + first.rows <= second.row
        or second.row + second.rows <= first.row
    )


def _areas_from_form(form, size: str, *, placed_by_preset: bool = False) -> list[dict]:
    """The labelled rows as areas; their cells are ignored when a preset places them."""
    areas, placed = [], []
    for index in range(MAX_AREAS):
        label = form.get(f"a{index}_label", "").strip()
        if not label:
            continue
        feature, action = _action_from_form(form, index, label)
        if placed_by_preset:
            areas.append({"label": label, "action": action, **({"feature": feature} if feature else {})})
            continue
        cells = _cells_from_form(form, index, label, size)
        for other_label, other in placed:
            if _overlap(cells, other):
                raise services.MenuProblem(_("「%(a)s」と「%(b)s」が重なっています", a=other_label, b=label))
        placed.append((label, cells))
        area = {**layouts.cell_bounds(size, cells), "label": label, "action": action}
        areas.append({**area, "feature": feature} if feature else area)
    return areas


@bp.route("/<int:menu_id>", methods=["GET", "POST"])
@login_required
@require("clinic.view")
def edit(menu_id: int):
    """Edit areas (bounds, label, action) with a live preview; save, upload an image, deploy."""
    menu, clinic = _menu(menu_id), current_clinic()
    check = None
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
        check = adcheck_gate(clinic, _menu_texts(request.form), request.form)
        if check.passed:
            check.record("richmenu", menu.id)
            db.session.commit()
            flash(_("保存しました。"), "success")
            return redirect(url_for(".edit", menu_id=menu_id))
        for problem in check.problems():
            flash(problem, "danger")
    page = _edit_page(menu, check)
    db.session.rollback()  # a refused form is shown as typed, and not saved
    return page


def _menu_texts(form) -> dict[str, str]:
    """What patients read on the menu (bar text, area labels), for the advertising check."""
    names = ["chat_bar_text"] + sorted(k for k in form if k.startswith("a") and k.endswith("_label"))
    return {name: form.get(name, "") for name in names if form.get(name, "").strip()}


def _edit_page(menu: RichMenu, check) -> str:
    return render_template(
        "richmenu/edit.html",
        gate=check,
        menu=menu,
        sizes=SIZES,
        rows=_editor_rows(menu),
        grid_columns=layouts.GRID_COLUMNS,
        grid_rows=layouts.GRID_ROWS,
        presets=layouts.PRESETS,
        value_keys=VALUE_KEYS,
        features=layouts.FEATURES,
        feature_labels=[(key, layouts.FEATURES[key][0]) for key in layouts.DEFAULT_ORDER],
        tags=db.session.scalars(sa.select(Tag).order_by(Tag.name)).all(),
    )


def _editor_rows(menu: RichMenu) -> list[dict]:
    """One row per area (its cells and feature), then blank rows up to the most a preset needs."""
    rows = []
    for area in menu.areas:
        rows.append({**area, "cells": layouts.cells_of(menu.size, area), "feature": layouts.feature_of(area)})
    blank = {"cells": layouts.Cells(0, 0), "feature": "", "action": {}}
    return rows + [blank] * max(0, min(max(6 - len(rows), 2), MAX_AREAS - len(rows)))


def _apply(menu: RichMenu, form) -> None:
    size = form.get("size", menu.size)
    if size not in SIZES:
        raise services.MenuProblem(_("サイズを選んでください"))
    alias = form.get("alias_id", "").strip()
    if alias and not services.ALIAS_RE.match(alias):
        raise services.MenuProblem(_("エイリアスは半角英小文字・数字・-_ の32文字以内です"))
    tag_id = parse_id(form.get("segment_tag_id", ""))
    if tag_id is not None and db.session.get(Tag, tag_id) is None:
        abort(400)
    preset = form.get("preset", "")
    if preset in layouts.PRESETS:
        size, areas = layouts.relayout(preset, _areas_from_form(form, size, placed_by_preset=True))
    else:
        areas = _areas_from_form(form, size)
    if menu.image and size != menu.size:
        menu.image, menu.image_type = None, ""
    menu.name = form.get("name", "").strip()[:120] or menu.name
    menu.size, menu.alias_id, menu.segment_tag_id = size, alias, tag_id
    menu.chat_bar_text = form.get("chat_bar_text", "").strip()[:14] or "メニュー"
    menu.areas = areas
    if form.get("is_default") and not menu.is_default:
        db.session.execute(sa.update(RichMenu).where(RichMenu.id != menu.id).values(is_default=False))
    menu.is_default = bool(form.get("is_default"))


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
