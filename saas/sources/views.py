"""Inflow source pages: the clinic's list with figures, editing, QR / poster / card downloads
(portal), and the tracked add-friend link patients open by scanning (``/add/<clinic>/...``)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.audit.services import record
from saas.common import parse_id, parse_ids
from saas.extensions import db
from saas.friends import services as friends
from saas.portal import menu
from saas.richmenu.models import RichMenu
from saas.sources import events, poster, public, services  # noqa: F401  (events registers the follow observer)
from saas.sources.models import InflowSource
from saas.tenancy.access import current_clinic, require

bp = Blueprint("sources", __name__)
staff = Blueprint("staff", __name__, url_prefix="/c/<clinic>/sources")

PROBLEMS = {
    "name": _l("経路名を入力してください（80文字以内）。"),
    "duplicate": _l("同じ名前の流入経路がすでにあります。"),
}


def _source_or_404(source_id: int) -> InflowSource:
    return db.get_or_404(InflowSource, source_id)  # another clinic's source is invisible: 404


def _menus() -> list[RichMenu]:
    return list(db.session.scalars(db.select(RichMenu).order_by(RichMenu.name)))


@staff.get("/")
@login_required
@require("friends.view")
def index():
    """The clinic's sources with their figures and links."""
    return render_template(
        "sources/index.html",
        sources=services.all_sources(),
        figures=services.figures(),
        tags={tag.id: tag for tag in friends.clinic_tags()},
        login_ready=public.login_ready(current_clinic()),
    )


def _read_form(source: InflowSource):
    menu_id = request.form.get("rich_menu_id", type=parse_id)
    menu_id = menu_id if menu_id and any(m.id == menu_id for m in _menus()) else None
    return services.save_source(
        source,
        name=request.form.get("name", ""),
        tag_ids=parse_ids(request.form.getlist("tag_ids")),
        rich_menu_id=menu_id,
        poster_message=request.form.get("poster_message", ""),
    )


def _edit_page(source: InflowSource, status: int = 200):
    page = render_template("sources/edit.html", source=source, tags=friends.clinic_tags(), menus=_menus())
    return page, status


@staff.route("/new", methods=["GET", "POST"])
@staff.route("/<int:source_id>", methods=["GET", "POST"])
@login_required
@require("friends.edit")
def edit(source_id: int | None = None):
    """Create or change a source: its name, poster text and action on a new friend."""
    source = _source_or_404(source_id) if source_id else InflowSource(tag_ids=[])
    if request.method == "GET":
        return _edit_page(source)
    try:
        _read_form(source)
    except services.SourceProblem as problem:
        db.session.rollback()
        flash(str(PROBLEMS[str(problem)]), "error")
        return _edit_page(source, 400)
    record("source.saved", target_type="inflow_source", target_id=source.id, details={"name": source.name})
    db.session.commit()
    flash(_("流入経路「%(name)s」を保存しました。", name=source.name), "success")
    return redirect(url_for(".index"))


@staff.post("/<int:source_id>/active")
@login_required
@require("friends.edit")
def toggle(source_id: int):
    """Stop (or resume) a source: a stopped source's link answers 404."""
    source = _source_or_404(source_id)
    source.active = not source.active
    record("source.active", target_type="inflow_source", target_id=source.id, details={"active": source.active})
    db.session.commit()
    return redirect(url_for(".index"))


def _download(data: bytes, mimetype: str, name: str) -> Response:
    return Response(data, mimetype=mimetype, headers={"Content-Disposition": f'inline; filename="{name}"'})


@staff.get("/<int:source_id>/qr.png")
@login_required
@require("friends.view")
def qr(source_id: int):
    """The source's QR code (its tracked add-friend URL)."""
    source = _source_or_404(source_id)
    return _download(poster.qr_png(public.tracked_url(source)), "image/png", f"line-qr-{source.id}.png")


def _printable(source_id: int, draw) -> Response:
    source = _source_or_404(source_id)
    try:
        data = draw(current_clinic().name, public.tracked_url(source), source.poster_message)
    except poster.FontMissing:
        abort(503)
    return _download(data, "application/pdf", f"line-{draw.__name__.split('_')[0]}-{source.id}.pdf")


@staff.get("/<int:source_id>/poster.pdf")
@login_required
@require("friends.view")
def poster_pdf(source_id: int):
    """The source's A4 poster, as PDF."""
    return _printable(source_id, poster.poster_pdf)


@staff.get("/<int:source_id>/card.pdf")
@login_required
@require("friends.view")
def card_pdf(source_id: int):
    """The source's small card (診察券 / 予約確認書 size), as PDF."""
    return _printable(source_id, poster.card_pdf)


bp.register_blueprint(staff)
bp.register_blueprint(public.bp)
menu.register("sources.staff.index", _l("流入経路"), "⇲", "friends.view", order=12)
