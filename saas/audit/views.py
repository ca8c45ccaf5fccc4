"""The audit log page of a clinic (admins), with filters, pagination and a CSV export."""

from __future__ import annotations

from datetime import date, datetime

from flask import Blueprint, Response, render_template, request
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.audit import labels, services
from saas.audit.services import AuditFilters
from saas.common import to_local
from saas.extensions import db
from saas.portal import menu
from saas.security.csvsafe import csv_document
from saas.tenancy.access import current_clinic, require

bp = Blueprint("audit", __name__, url_prefix="/c/<clinic>/audit")
PER_PAGE = 50
EXPORT_LIMIT = 50_000

bp.add_app_template_global(labels.action_label, "audit_action_label")
bp.add_app_template_global(labels.target_label, "audit_target_label")
bp.add_app_template_global(labels.detail_items, "audit_detail_items")
menu.register("audit.index", _l("監査ログ"), "⚑", permission="audit.view", order=90)


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def _filters_from_request() -> AuditFilters:
    args = request.args
    return AuditFilters(
        action=args.get("action", "").strip(),
        actor=args.get("actor", "").strip(),
        date_from=_date(args.get("from")),
        date_to=_date(args.get("to")),
    )


@bp.get("/")
@login_required
@require("audit.view")
def index():
    clinic = current_clinic()
    filters = _filters_from_request()
    events, total, following = services.page_of_events(
        [clinic.id], filters, PER_PAGE, _cursor(request.args.get("before"))
    )
    return render_template(
        "audit/index.html",
        events=events,
        total=total,
        total_capped=total > services.COUNT_CAP,
        count_cap=services.COUNT_CAP,
        next_before=f"{following[0].isoformat()}~{following[1]}" if following else None,
        filters=filters,
        actions=services.actions_seen([clinic.id]),
        query={k: v for k, v in request.args.items() if k != "before"},
    )


def _cursor(token: str | None) -> tuple[datetime, int] | None:
    moment, _, ident = (token or "").partition("~")
    try:
        return datetime.fromisoformat(moment), int(ident)
    except ValueError:
        return None


CSV_HEADER = [
    _l("日時(JST)"),
    _l("操作"),
    _l("実行者"),
    _l("実行者ID"),
    _l("対象種別"),
    _l("対象ID"),
    _l("IPアドレス"),
    _l("ユーザーエージェント"),
    _l("詳細"),
]


def _csv_rows(events) -> str:
    return csv_document(
        CSV_HEADER,
        (
            [
                to_local(e.created_at).strftime("%Y-%m-%d %H:%M:%S"),
                e.action,
                e.actor_email,
                e.actor_user_id or "",
                e.target_type,
                e.target_id or "",
                e.ip,
                e.user_agent,
                e.details,
            ]
            for e in events
        ),
    )


@bp.get("/export.csv")
@login_required
@require("audit.view")
def export():
    clinic = current_clinic()
    filters = _filters_from_request()
    events = db.session.scalars(services.events_for_clinics([clinic.id], filters).limit(EXPORT_LIMIT)).all()
    services.record(
        "audit.export",
        target_type="audit_log",
        details={"rows": len(events), **{k: v for k, v in request.args.items() if v}},
        commit=True,
    )
    filename = f"audit-{clinic.slug}-{date.today().isoformat()}.csv"
    return Response(
        _csv_rows(events),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
