"""Portal pages: new delivery (audience, live count, schedule, urgent), history, detail with progress."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, flash, make_response, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from werkzeug.datastructures import MultiDict

from saas import billing
from saas.adcheck.gate import gate as adcheck_gate
from saas.adcheck.services import message_texts
from saas.common import ID_MAX, N_, parse_id, utcnow
from saas.delivery import audience, resend, services, urgent  # noqa: F401  (urgent: notice hook)
from saas.delivery.describe import describe_segment, messages_as_sent, title_as_sent, title_in_words
from saas.delivery.forms import AUDIENCES, read_form, read_segment
from saas.delivery.models import RESENDABLE_STATUSES, Delivery, DeliveryKind, DeliveryStatus
from saas.extensions import db
from saas.friends.models import Friend, Tag
from saas.messaging.objects import validate_messages
from saas.messaging.variables import is_personalised, render, sample_context
from saas.portal import menu
from saas.quota.usage import usage
from saas.sendguard import guard
from saas.tenancy.access import current_clinic, require

bp = Blueprint("delivery", __name__)
PAGE_SIZE = 30
KIND_LABELS = {
    "broadcast": N_("全員配信"),
    "segment": N_("セグメント配信"),
    "urgent": N_("緊急のお知らせ"),
    "push": N_("個別送信"),
    "step": N_("ステップ配信"),
}
RESEND_LABEL = N_("失敗分の再送")
STATUS_LABELS = {
    "draft": (N_("下書き"), ""),
    "pending_approval": (N_("承認待ち"), "status-warn"),
    "scheduled": (N_("予約済み"), "status-warn"),
    "planning": (N_("準備中"), "status-warn"),
    "sending": (N_("配信中"), "status-warn"),
    "done": (N_("完了"), "status-ok"),
    "partly_failed": (N_("一部失敗"), "status-danger"),
    "failed": (N_("失敗"), "status-danger"),
    "cancelled": (N_("キャンセル"), ""),
    "stopped": (N_("停止"), "status-danger"),
    "refused": (N_("送信不可"), "status-danger"),
}


def kind_label(delivery: Delivery) -> str:
    """What kind of send it was; a resend goes only to the original's failed recipients."""
    return RESEND_LABEL if delivery.resend_of_id else KIND_LABELS.get(delivery.kind, delivery.kind)


@bp.app_context_processor
def _labels():
    return {"delivery_kinds": KIND_LABELS, "delivery_statuses": STATUS_LABELS, "skip_reasons": services.SKIP_REASONS}


bp.add_app_template_filter(kind_label, "kind_label")


bp.add_app_template_filter(title_in_words, "title_in_words")
bp.add_app_template_filter(title_as_sent, "title_as_sent")


def _get(delivery_id: int) -> Delivery:
    return db.get_or_404(Delivery, delivery_id)  # another clinic's row is invisible: 404


def _draft_messages(draft_id: str | None) -> tuple[Delivery | None, list[dict]]:
    draft_id = parse_id(draft_id or "")
    if draft_id is None:
        return None, []
    draft = db.session.get(Delivery, draft_id)
    if draft is None or draft.status != DeliveryStatus.DRAFT:
        return None, []
    return draft, draft.messages


def _page(values, draft=None, messages=None, errors=(), status=200, gate=None):
    clinic = current_clinic()
    friend_id = parse_id(values.get("friend_id") or "")
    friend = db.session.get(Friend, friend_id) if friend_id else None
    return (
        render_template(
            "delivery/new.html",
            values=values,
            draft=draft,
            messages=render(messages or [], sample_context(clinic)),
            errors=list(errors),
            tags=db.session.scalars(sa.select(Tag).order_by(Tag.name)).all(),
            friend=friend,
            usage=usage(clinic.id),
            failure_alerts=unresolved_failures(),
            gate=gate,
            **_audience_of(values),
        ),
        status,
    )


def _audience_of(values) -> dict:
    """The count box as the form stands (a refused urgent notice shows its confirmation again)."""
    parsed = read_form(values, utcnow())
    counts = audience.count_audience(parsed.kind, parsed.segment, parsed.friend_id)
    verdict = guard.assess(current_clinic().id, parsed.kind, parsed.segment, counts.eligible)
    return {"counts": counts, "verdict": verdict, "kind": parsed.kind}


@bp.get("/c/<clinic>/deliveries/new")
@login_required
@require("messages.send")
def new_delivery():
    draft, messages = _draft_messages(request.args.get("draft"))
    values = MultiDict({"audience": "friend" if request.args.get("friend") else "all"})
    values["friend_id"] = request.args.get("friend", "")
    check = adcheck_gate(current_clinic(), message_texts(messages), values, hold_blocks=True) if draft else None
    return _page(values, draft, messages, gate=check)  # the composer's findings are shown before sending


@bp.post("/c/<clinic>/deliveries/count")
@login_required
@require("messages.send")
def audience_count():
    """htmx: the live count of the audience being built."""
    form = request.form
    if form.get("audience", "all") not in AUDIENCES:  # counted as nobody, never as 友だち全員
        return render_template("delivery/_count_refused.html", problem=_("配信先の指定が正しくありません"))
    if form.get("urgent") == "1":
        kind, segment = DeliveryKind.URGENT, {}
    elif form.get("audience") == "segment":
        kind, segment = DeliveryKind.SEGMENT, read_segment(form)[0]
    elif form.get("audience") == "friend":
        kind, segment = DeliveryKind.PUSH, {}
    else:
        kind, segment = DeliveryKind.BROADCAST, {}
    friend_id = parse_id(form.get("friend_id") or "")
    counts = audience.count_audience(kind, segment, friend_id)
    verdict = guard.assess(current_clinic().id, kind, segment, counts.eligible)
    return render_template(
        "delivery/_count.html", counts=counts, usage=usage(current_clinic().id), verdict=verdict, kind=kind
    )


def _messages_from(form) -> tuple[Delivery | None, list[dict], list[str]]:
    draft, messages = _draft_messages(form.get("draft_id"))
    if not draft:
        text = (form.get("text") or "").strip()
        messages = [{"type": "text", "text": text}] if text else []
    if not messages:
        return draft, messages, [_("メッセージを入力してください")]
    return draft, messages, [str(p) for p in validate_messages(messages)] if not draft else []


@bp.post("/c/<clinic>/deliveries")
@login_required
@require("messages.send")
def create():
    """Create the delivery and start it (or schedule it); quota is reserved before anything is sent."""
    parsed = read_form(request.form, utcnow())
    draft, messages, message_errors = _messages_from(request.form)
    check = adcheck_gate(current_clinic(), message_texts(messages), request.form, hold_blocks=True)
    count = audience.count_audience(parsed.kind, parsed.segment, parsed.friend_id).eligible
    errors = (
        message_errors + parsed.errors + check.problems() + guard.urgent_unconfirmed(parsed.kind, count, request.form)
    )
    if errors:
        return _page(request.form, draft, messages, errors, status=422, gate=check)
    delivery = services.create_delivery(
        messages=messages,
        kind=parsed.kind,
        title=(request.form.get("title") or "").strip(),
        segment=parsed.segment,
        friend_id=parsed.friend_id,
        allow_trim=parsed.allow_trim,
        scheduled_at=parsed.scheduled_at,
        actor=current_user,
        track_clicks_per_friend=parsed.track_clicks_per_friend,
    )
    check.record("delivery", delivery.id)
    verdict = guard.assess(delivery.clinic_id, parsed.kind, parsed.segment, count, check.findings)
    if verdict.held:  # the mis-send guard: nothing is planned before a second staff member approves
        if services.refused_for_billing(delivery, services.PAUSED_AT_SUBMIT):
            flash(_(billing.MarketingPaused.message), "danger")
            return redirect(url_for("delivery.detail", delivery_id=delivery.id))
        approval = guard.hold(delivery, verdict, check.findings, current_user)
        _forget_draft(draft)
        flash(_("もう一人のスタッフの承認を待っています。承認されるまで送信されません。"), "warning")
        return redirect(url_for("sendguard.approval", approval_id=approval.id))
    try:
        services.submit(delivery)
    except services.QueueUnavailable:
        return _queue_down(request.form, draft, messages)
    except billing.MarketingPaused as paused:
        flash(_(str(paused)), "danger")
        return redirect(url_for("delivery.detail", delivery_id=delivery.id))
    _forget_draft(draft)
    return redirect(url_for("delivery.detail", delivery_id=delivery.id))


def _forget_draft(draft) -> None:
    if draft:
        db.session.delete(draft)
        db.session.commit()


def _queue_down(values, draft, messages):
    """Redis is unreachable: nothing was created; say so and keep what the sender typed."""
    problem = _(
        "配信の受付が一時的にできません（ジョブキューに接続できません）。配信は作成されていません。少し待ってからもう一度お試しください。"
    )
    return _page(values, draft, messages, [problem], status=503)


@bp.get("/c/<clinic>/deliveries")
@login_required
@require("messages.send")
def history():
    page = min(max(request.args.get("page", 1, type=int), 1), ID_MAX // PAGE_SIZE)  # the OFFSET stays a bigint
    query = sa.select(Delivery).where(Delivery.status != DeliveryStatus.DRAFT).order_by(Delivery.id.desc())
    deliveries = db.session.scalars(query.limit(PAGE_SIZE + 1).offset((page - 1) * PAGE_SIZE)).all()
    for delivery in deliveries:
        if delivery.status == DeliveryStatus.SENDING:
            services.refresh_counts(delivery)
    alerts = unresolved_failures()
    page_html = render_template(
        "delivery/history.html",
        deliveries=deliveries[:PAGE_SIZE],
        page=page,
        has_next=len(deliveries) > PAGE_SIZE,
        failure_alerts=alerts,
    )
    db.session.rollback()  # live counts are for display only
    return page_html


def _detail_context(delivery: Delivery) -> dict:
    if delivery.status == DeliveryStatus.SENDING:
        services.refresh_counts(delivery)
    failures = resend.failure_reasons(delivery.id)
    friend = db.session.get(Friend, delivery.friend_id) if delivery.friend_id else None
    resent = db.session.scalar(sa.select(Delivery).where(Delivery.resend_of_id == delivery.id))
    withheld = resend.withheld_count(delivery.id) if delivery.is_resendable else 0
    return {
        "delivery": delivery,
        "failures": failures,
        "friend": friend,
        "resent": resent,
        "withheld": withheld,
        "conditions": describe_segment(delivery.segment),
        "sample_messages": messages_as_sent(delivery, sample_context(current_clinic())),
        "personalised": is_personalised(delivery.messages),
    }


@bp.get("/c/<clinic>/deliveries/<int:delivery_id>")
@login_required
@require("messages.send")
def detail(delivery_id: int):
    delivery = _get(delivery_id)
    if delivery.status == DeliveryStatus.DRAFT:
        return redirect(url_for("delivery.new_delivery", draft=delivery.id))
    page = render_template("delivery/detail.html", **_detail_context(delivery))
    db.session.rollback()
    return page


@bp.get("/c/<clinic>/deliveries/<int:delivery_id>/progress")
@login_required
@require("messages.send")
def progress(delivery_id: int):
    """htmx: the progress card, polled while the delivery is under way. Once it has ended the
    whole page is reloaded: its header changes too (no 配信をキャンセル, a link to the report)."""
    delivery = _get(delivery_id)
    response = make_response(render_template("delivery/_progress.html", **_detail_context(delivery)))
    if request.headers.get("HX-Request") and not delivery.is_active:
        response.headers["HX-Refresh"] = "true"
    db.session.rollback()
    return response


@bp.post("/c/<clinic>/deliveries/<int:delivery_id>/resend")
@login_required
@require("messages.send")
def resend_failures(delivery_id: int):
    """「失敗分を再送」: a new delivery to the recipients who failed (nobody twice)."""
    original = _get(delivery_id)
    try:
        again = resend.resend_failures(original, actor=current_user)
    except resend.NotResendable:
        flash(_("この配信には再送できる失敗分がありません（再送済みの場合もあります）。"), "warning")
        return redirect(url_for("delivery.detail", delivery_id=delivery_id))
    except services.QueueUnavailable:
        flash(_("配信の受付が一時的にできません（ジョブキューに接続できません）。再送は作成されていません。"), "danger")
        return redirect(url_for("delivery.detail", delivery_id=delivery_id))
    except billing.MarketingPaused as paused:
        flash(_(str(paused)), "danger")
        return redirect(url_for("delivery.detail", delivery_id=delivery_id))
    flash(_("失敗した %(count)s 人への再送を始めました。", count=f"{original.failed:,}"), "success")
    return redirect(url_for("delivery.detail", delivery_id=again.id))


def unresolved_failures() -> list[Delivery]:
    """The clinic's deliveries that ended with failures and were not resent (the sender's alert)."""
    resent = sa.select(Delivery.resend_of_id).where(Delivery.resend_of_id.is_not(None))
    return db.session.scalars(
        sa.select(Delivery)
        .where(Delivery.status.in_(RESENDABLE_STATUSES), Delivery.id.not_in(resent))
        .order_by(Delivery.id.desc())
        .limit(5)
    ).all()


@bp.post("/c/<clinic>/deliveries/<int:delivery_id>/cancel")
@login_required
@require("messages.send")
def cancel(delivery_id: int):
    delivery = _get(delivery_id)
    if services.cancel(delivery, actor=current_user):
        flash(_("配信をキャンセルしました。まだ送信していない分は送信されません。"), "success")
    else:
        flash(_("この配信はすでに終了しているため、キャンセルできません。"), "warning")
    return redirect(url_for("delivery.detail", delivery_id=delivery_id))


menu.register("delivery.new_delivery", _l("配信"), "➤", "messages.send", order=21)
menu.register("delivery.history", _l("配信履歴"), "☰", "messages.send", order=22)
