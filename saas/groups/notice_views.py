"""Pages of group-wide notices: HQ composes, checks every branch's quota, sends and follows
progress per branch; a branch admin approves or declines their branch's part."""

from __future__ import annotations

import functools

import sqlalchemy as sa
from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from saas.adcheck import services as adcheck
from saas.adcheck.gate import ACK_FIELD, APPROVE_FIELD, Gate
from saas.audit.services import record
from saas.common import parse_id, parse_ids
from saas.delivery.views import KIND_LABELS, STATUS_LABELS  # noqa: F401  (labels used by the templates)
from saas.extensions import db
from saas.friends.models import Tag
from saas.groups import notices, services
from saas.groups.models import BranchState, GroupNotice, GroupNoticeBranch, Shortfall
from saas.library.models import Level
from saas.messaging.objects import validate_messages
from saas.messaging.variables import check_variables
from saas.portal import menu
from saas.tenancy.access import current_clinic, require
from saas.tenancy.scoping import tenant_scope

bp = Blueprint("notices", __name__)
BRANCH_STATES = {
    BranchState.AWAITING_APPROVAL: (_l("承認待ち"), "status-warn"),
    BranchState.DECLINED: (_l("院が見送り"), ""),
    BranchState.EXPIRED: (_l("承認期限切れ"), ""),
    BranchState.SKIPPED: (_l("通数不足のため送信せず"), "status-danger"),
    BranchState.REFUSED: (_l("送信中止（通数不足の院あり）"), "status-danger"),
    BranchState.STARTED: (_l("配信開始"), "status-ok"),
    BranchState.FAILED_TO_START: (_l("受付できず（ジョブキュー停止）"), "status-danger"),
}
SHORTFALL_LABELS = {
    Shortfall.REFUSE: _l("すべての院で送信を中止する"),
    Shortfall.TRIM: _l("その院は通数の範囲で送る（一部の友だちには届きません）"),
    Shortfall.SKIP: _l("その院だけ送らない"),
}


@bp.app_context_processor
def _labels():
    return {"branch_states": BRANCH_STATES, "shortfall_labels": SHORTFALL_LABELS}


def headquarters(view):
    """Resolve ``<slug>`` to the organization; 404 unless the user administers it."""

    @functools.wraps(view)
    def wrapped(slug: str, **kwargs):
        shared = services.find_level(Level.ORGANIZATION, slug)
        if not services.can_manage(current_user, shared):
            abort(404)
        g.shared = shared
        g.branches = services.branches_of(shared.id)
        return view(**kwargs)

    return wrapped


@bp.get("/organizations/<slug>/notices")
@login_required
@headquarters
def index():
    """The organization's group notices, newest first, and the approval setting."""
    rows = db.session.scalars(
        sa.select(GroupNotice)
        .where(GroupNotice.organization_id == g.shared.id)
        .order_by(GroupNotice.id.desc())
        .limit(50)
    ).all()
    return render_template(
        "groups/notices.html", shared=g.shared, notices=rows, settings=notices.settings_for(g.shared.id)
    )


@bp.post("/organizations/<slug>/notices/settings")
@login_required
@headquarters
def save_settings():
    current = notices.settings_for(g.shared.id)
    hours = request.form.get("approval_hours", "24")
    current.approval_required = request.form.get("approval_required") == "1"
    current.approval_hours = 24 if parse_id(hours) is None else min(max(parse_id(hours), 1), 168)
    db.session.add(current)
    record("group_notice.settings", target_type="organization", target_id=g.shared.id,
           details={"approval_required": current.approval_required, "approval_hours": current.approval_hours})  # fmt: skip
    db.session.commit()
    flash(_("設定を保存しました。"), "success")
    return redirect(url_for(".index", slug=g.shared.slug))


def _branch_tags() -> dict[int, list[Tag]]:
    tags = {}
    for clinic in g.branches:
        with tenant_scope(clinic.id):
            tags[clinic.id] = db.session.scalars(sa.select(Tag).order_by(Tag.name)).all()
    return tags


def _read_plans(form, messages: list[dict]) -> list[notices.BranchPlan]:
    urgent, chosen = form.get("urgent") == "1", set(form.getlist("clinic_ids"))
    plans = []
    for clinic in g.branches:
        if str(clinic.id) not in chosen:
            continue
        choice = form.get(f"audience_{clinic.id}", "all")
        kind = notices.kind_for(urgent, choice)
        tag_ids = [i for i in parse_ids(form.getlist(f"tags_{clinic.id}")) if i]
        segment = {"tag_ids": tag_ids, "tag_match": "any"} if kind == "segment" else {}
        plans.append(notices.plan_branch(clinic, kind, segment, messages))
    return plans


def _problems(form, messages: list[dict], plans) -> list[str]:
    problems = [str(p) for p in [*validate_messages(messages), *check_variables(messages)]] if messages else []
    if not messages:
        problems.append(_("メッセージを入力してください"))
    if not plans:
        problems.append(_("送信する院を1つ以上選んでください"))
    if any(p.kind == "segment" and not p.segment.get("tag_ids") for p in plans):
        problems.append(_("タグで絞り込む院ではタグを1つ以上選んでください"))
    if form.get("shortfall") not in set(Shortfall):
        problems.append(_("通数が足りない院の扱いを選んでください"))
    return problems


@bp.route("/organizations/<slug>/notices/new", methods=["GET", "POST"])
@login_required
@headquarters
def compose():
    """Compose once; 確認 shows every branch's audience, quota and rendered text before 送信."""
    form = request.form
    text = (form.get("text") or "").strip()
    messages = [{"type": "text", "text": text}] if text else []
    plans = _read_plans(form, messages) if request.method == "POST" else []
    problems = _problems(form, messages, plans) if request.method == "POST" else []
    checked = _guideline_gate(form, text) if request.method == "POST" else None
    if checked is not None and form.get("action") == "send":
        problems += checked.problems()
    if request.method == "POST" and form.get("action") == "send" and not problems:
        notice = notices.create_notice(
            g.shared, plans, messages=messages, title=(form.get("title") or "").strip()[:200],
            urgent=form.get("urgent") == "1", shortfall=form["shortfall"], actor=current_user,
        )  # fmt: skip
        checked.record("group_notice", notice.id)
        record("group_notice.create", target_type="group_notice", target_id=notice.id,
               details={"branches": [p.clinic.id for p in plans], "urgent": notice.urgent, "shortfall": notice.shortfall,
                        "refused": bool(notice.refused_reason)}, commit=True)  # fmt: skip
        return redirect(url_for(".detail", slug=g.shared.slug, notice_id=notice.id))
    page = render_template(
        "groups/notice_new.html", shared=g.shared, branches=g.branches, tags=_branch_tags(), form=form,
        plans=plans, problems=problems, settings=notices.settings_for(g.shared.id), gate=checked,
    )  # fmt: skip
    return page, 422 if problems and form.get("action") == "send" else 200


def _guideline_gate(form, text: str) -> Gate | None:
    """The 医療広告ガイドライン check of the notice (the organization's rules): warnings must be
    acknowledged; block findings need this HQ administrator's explicit, audited approval."""
    if not text or not g.branches:
        return None
    return Gate(
        findings=adcheck.check_texts(g.branches[0], {"text": text}),
        acknowledged=form.get(ACK_FIELD) == "1",
        approved=form.get(APPROVE_FIELD) == "1",
        may_approve=True,  # only the organization's administrators reach this page
    )


def _notice(notice_id: int) -> GroupNotice:
    notice = db.session.get(GroupNotice, notice_id)
    if notice is None or notice.organization_id != g.shared.id:
        abort(404)
    return notice


@bp.get("/organizations/<slug>/notices/<int:notice_id>")
@login_required
@headquarters
def detail(notice_id: int):
    """Progress and counts per branch (polled while any branch is sending)."""
    notice = _notice(notice_id)
    notices.expire_overdue(notice)
    template = "groups/_notice_progress.html" if request.headers.get("HX-Request") else "groups/notice_detail.html"
    page = render_template(template, shared=g.shared, notice=notice, rows=notices.progress(notice))
    db.session.rollback()  # live counts are for display only
    return page


# ---- the branch's side ---------------------------------------------------------------------------


@bp.get("/c/<clinic>/group-notices")
@login_required
@require("messages.send")
def branch_index():
    """This branch's parts of group notices from headquarters: what was sent, what awaits approval."""
    rows = db.session.scalars(sa.select(GroupNoticeBranch).order_by(GroupNoticeBranch.id.desc()).limit(50)).all()
    found = {
        n.id: n
        for n in db.session.scalars(sa.select(GroupNotice).where(GroupNotice.id.in_([r.notice_id for r in rows])))
    }
    return render_template("groups/branch_notices.html", rows=rows, notices=found, clinic=current_clinic())


def _decide(branch_id: int, approve: bool):
    branch = db.session.get(GroupNoticeBranch, branch_id) or abort(404)
    state = notices.decide(branch, approve, current_user)
    action = "group_notice.approve" if approve else "group_notice.decline"
    record(action, target_type="group_notice", target_id=branch.notice_id, details={"state": state}, commit=True)
    flash(str(BRANCH_STATES[state][0]), "success" if state == BranchState.STARTED else "info")
    return redirect(url_for(".branch_index"))


@bp.post("/c/<clinic>/group-notices/<int:branch_id>/approve")
@login_required
@require("clinic.settings")
def approve(branch_id: int):
    """A branch admin approves: the branch's quota is checked now, then its delivery starts."""
    return _decide(branch_id, True)


@bp.post("/c/<clinic>/group-notices/<int:branch_id>/decline")
@login_required
@require("clinic.settings")
def decline(branch_id: int):
    """A branch admin declines: nothing is sent to this branch's friends."""
    return _decide(branch_id, False)


def awaiting_badge(clinic) -> int:
    return (
        db.session.scalar(
            sa.select(sa.func.count(GroupNoticeBranch.id)).where(
                GroupNoticeBranch.state == BranchState.AWAITING_APPROVAL
            )
        )
        or 0
    )


menu.register(
    "groups.notices.branch_index", _l("法人からのお知らせ"), "✦", "messages.send", order=23, badge=awaiting_badge
)
