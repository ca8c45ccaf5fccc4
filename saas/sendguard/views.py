"""Portal pages of the mis-send guard: the approvals list and the approver's page, the guard's
settings, linking one's own LINE, and 「テスト送信」."""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from saas.adcheck import services as adcheck
from saas.auth.redirects import local_target
from saas.booking import services as booking
from saas.common import parse_id
from saas.delivery import audience
from saas.delivery.describe import describe_segment
from saas.delivery.models import Delivery, DeliveryStatus
from saas.extensions import db
from saas.line import login as line_login
from saas.line.errors import LineError
from saas.portal import menu
from saas.sendguard import guard, testsend
from saas.sendguard.models import ApprovalState, SendApproval
from saas.tenancy.access import can, current_clinic, require

bp = Blueprint("sendguard", __name__, url_prefix="/c/<clinic>")
LINK_FLOW_KEY = "staff_line_link_flow"
STATE_LABELS = {
    ApprovalState.PENDING: _l("承認待ち"),
    ApprovalState.APPROVED: _l("承認済み"),
    ApprovalState.DECLINED: _l("却下"),
    ApprovalState.WITHDRAWN: _l("取り下げ"),
}


@bp.app_context_processor
def _labels():
    return {"approval_states": STATE_LABELS, "approval_reasons": guard.REASON_LABELS}


def _approval(approval_id: int) -> SendApproval:
    return db.get_or_404(SendApproval, approval_id)  # another clinic's approval is invisible: 404


@bp.get("/approvals")
@login_required
@require("messages.send")
def approvals():
    """Deliveries waiting for a second staff member, then the latest decisions."""
    rows = db.session.scalars(
        sa.select(SendApproval).order_by((SendApproval.state == ApprovalState.PENDING).desc(), SendApproval.id.desc())
        .limit(100)
    ).all()  # fmt: skip
    deliveries = {
        d.id: d for d in db.session.scalars(sa.select(Delivery).where(Delivery.id.in_([r.delivery_id for r in rows])))
    }
    return render_template("sendguard/approvals.html", approvals=rows, deliveries=deliveries)


@bp.get("/deliveries/<int:delivery_id>/approval")
@login_required
@require("messages.send")
def approval_of_delivery(delivery_id: int):
    found = db.session.scalars(sa.select(SendApproval).where(SendApproval.delivery_id == delivery_id)).first()
    if found is None:
        abort(404)
    return redirect(url_for(".approval", approval_id=found.id))


def _decision_blocker(approval: SendApproval) -> str | None:
    try:
        guard.check_decider(approval, current_user, is_admin=can("adcheck.approve"))
    except guard.NotAllowed as reason:
        return str(reason)
    return None


@bp.get("/approvals/<int:approval_id>")
@login_required
@require("messages.send")
def approval(approval_id: int):
    """The approver's page: who receives it (count, segment in words), the messages as sent, and why it waits."""
    found = _approval(approval_id)
    delivery = db.get_or_404(Delivery, found.delivery_id)
    clinic = current_clinic()
    page = render_template(
        "sendguard/approval.html",
        approval=found,
        delivery=delivery,
        verdict=guard.Verdict(tuple(found.reasons), found.audience_count, guard.threshold_of(clinic.id)),
        current_count=audience.count_audience(delivery.kind, delivery.segment, delivery.friend_id).eligible,
        conditions=describe_segment(delivery.segment),
        preview=testsend.rendered(clinic, delivery.messages),
        findings=adcheck.check_messages(clinic, delivery.messages),
        blocker=_decision_blocker(found),
        own=found.requested_by_id == current_user.id,
        linked=testsend.link_of(current_user.id),
    )
    db.session.rollback()
    return page


@bp.post("/approvals/<int:approval_id>/approve")
@login_required
@require("messages.send")
def approve(approval_id: int):
    found = _approval(approval_id)
    try:
        delivery = guard.approve(found, current_user, is_admin=can("adcheck.approve"))
    except guard.NotAllowed as reason:
        flash(str(reason), "danger")
        return redirect(url_for(".approval", approval_id=approval_id))
    flash(_("承認しました。配信を開始します。"), "success")
    return redirect(url_for("delivery.detail", delivery_id=delivery.id))


@bp.post("/approvals/<int:approval_id>/decline")
@login_required
@require("messages.send")
def decline(approval_id: int):
    found = _approval(approval_id)
    try:
        guard.decline(found, current_user, request.form.get("note", "").strip(), is_admin=can("adcheck.approve"))
    except guard.NotAllowed as reason:
        flash(str(reason), "danger")
        return redirect(url_for(".approval", approval_id=approval_id))
    flash(_("却下しました。この配信は送信されません。"), "success")
    return redirect(url_for(".approvals"))


@bp.post("/approvals/<int:approval_id>/withdraw")
@login_required
@require("messages.send")
def withdraw(approval_id: int):
    found = _approval(approval_id)
    try:
        guard.withdraw(found, current_user)
    except guard.NotAllowed as reason:
        flash(str(reason), "danger")
        return redirect(url_for(".approval", approval_id=approval_id))
    flash(_("承認の依頼を取り下げました。この配信は送信されません。"), "success")
    return redirect(url_for(".approvals"))


@bp.route("/send-guard", methods=["GET", "POST"])
@login_required
@require("clinic.settings")
def settings():
    """How many friends a send may reach without a second staff member, and how fresh a segment may be."""
    current = guard.settings_for(current_clinic().id)
    if request.method == "POST":
        threshold, minutes = request.form.get("approval_threshold", ""), request.form.get("fresh_segment_minutes", "")
        threshold, minutes = parse_id(threshold), parse_id(minutes)
        if threshold is None or minutes is None or minutes > 1440:
            flash(_("人数と分は数字で入力してください（分は1440まで）。"), "danger")
            return redirect(url_for(".settings"))
        before = {
            "approval_threshold": current.approval_threshold,
            "fresh_segment_minutes": current.fresh_segment_minutes,
        }
        current.approval_threshold, current.fresh_segment_minutes = threshold, minutes
        after = {
            "approval_threshold": current.approval_threshold,
            "fresh_segment_minutes": current.fresh_segment_minutes,
        }
        from saas.audit.services import record

        record("send_guard.settings", target_type="clinic", target_id=current.clinic_id,
               details={"before": before, "after": after})  # fmt: skip
        db.session.commit()
        flash(_("誤配信防止の設定を保存しました。"), "success")
        return redirect(url_for(".settings"))
    page = render_template("sendguard/settings.html", settings=current)
    db.session.commit()  # the row is created with the defaults on first view
    return page


def _login_channel(clinic) -> line_login.LoginChannel | None:
    settings = booking.get_settings(clinic.id)
    if not settings.login_ready:
        return None
    return line_login.LoginChannel(settings.login_channel_id, settings.login_channel_secret)


def _callback_uri() -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + url_for(".line_callback")


@bp.get("/me/line")
@login_required
@require("messages.send")
def my_line():
    """The staff member's own LINE for テスト送信: linked or not, and the button to link it."""
    clinic = current_clinic()
    page = render_template(
        "sendguard/my_line.html",
        linked=testsend.link_of(current_user.id),
        login_ready=_login_channel(clinic) is not None,
    )
    db.session.rollback()
    return page


@bp.post("/me/line/link")
@login_required
@require("messages.send")
def link_line():
    """Sign in with LINE (the clinic's LINE Login channel) to link one's own LINE user id."""
    channel = _login_channel(current_clinic())
    if channel is None:
        flash(_("LINEログインのチャネルが設定されていません（予約設定で設定できます）。"), "danger")
        return redirect(url_for(".my_line"))
    flow = {"state": secrets.token_urlsafe(24), "nonce": secrets.token_urlsafe(24),
            "verifier": secrets.token_urlsafe(48), "clinic": current_clinic().id}  # fmt: skip
    session[LINK_FLOW_KEY] = flow
    return redirect(
        line_login.authorization_url(
            channel, _callback_uri(), state=flow["state"], nonce=flow["nonce"], code_verifier=flow["verifier"]
        )
    )


@bp.get("/me/line/callback")
@login_required
@require("messages.send")
def line_callback():
    """Back from LINE Login: keep the staff member's LINE user id for this clinic."""
    clinic = current_clinic()
    flow = session.pop(LINK_FLOW_KEY, None)
    channel = _login_channel(clinic)
    state = request.args.get("state", "")
    if not flow or channel is None or flow["clinic"] != clinic.id or not secrets.compare_digest(state, flow["state"]):
        flash(_("LINE連携の有効期限が切れました。もう一度お試しください。"), "danger")
        return redirect(url_for(".my_line"))
    if "error" in request.args or not request.args.get("code"):
        flash(_("LINEログインがキャンセルされました。"), "warning")
        return redirect(url_for(".my_line"))
    try:
        tokens = line_login.exchange_code(channel, _callback_uri(), request.args["code"], flow["verifier"])
        identity = line_login.verify_id_token(tokens.get("id_token", ""), channel, nonce=flow["nonce"])
    except (line_login.IdTokenInvalid, LineError) as exc:
        current_app.logger.warning("staff LINE link failed at clinic %s: %s", clinic.id, exc)
        flash(_("LINEログインを確認できませんでした。"), "danger")
        return redirect(url_for(".my_line"))
    testsend.link(clinic, current_user, identity.user_id, identity.name)
    flash(_("LINE「%(name)s」を連携しました。テスト送信はこのLINEに届きます。", name=identity.name), "success")
    return redirect(url_for(".my_line"))


@bp.post("/me/line/unlink")
@login_required
@require("messages.send")
def unlink_line():
    if testsend.unlink(current_user):
        flash(_("LINEの連携を解除しました。"), "success")
    return redirect(url_for(".my_line"))


def _messages_to_test(form) -> tuple[list[dict], int | None]:
    """The messages of the form being sent: a held delivery, the composer's draft, or the typed text."""
    for key in ("delivery_id", "draft_id"):
        if parse_id(form.get(key, "")) is not None:
            found = db.get_or_404(Delivery, parse_id(form[key]))
            if key == "draft_id" and found.status != DeliveryStatus.DRAFT:
                abort(404)
            return list(found.messages or []), found.id
    text = (form.get("text") or "").strip()
    return ([{"type": "text", "text": text}] if text else []), None


@bp.post("/test-send")
@login_required
@require("messages.send")
def test_send():
    """「テスト送信」: push the exact messages to one's own LINE (htmx answers with a line of text)."""
    messages, delivery_id = _messages_to_test(request.form)
    try:
        name = testsend.send(current_clinic(), current_user, messages, delivery_id=delivery_id)
        text, ok = _("「%(name)s」のLINEにテスト送信しました。", name=name), True
    except testsend.TestSendRefused as reason:
        text, ok = str(reason), False
    if request.headers.get("HX-Request"):
        return render_template("sendguard/_test_result.html", text=text, ok=ok)
    flash(text, "success" if ok else "danger")
    return redirect(local_target(request.form.get("next")) or url_for("delivery.new_delivery"))


menu.register("sendguard.approvals", _l("配信の承認"), "✔", "messages.send", order=23)
