"""The chat inbox pages: the conversation list, one conversation, the composer and its actions."""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from saas.audit.services import record, record_conversation_view, record_list_view
from saas.auth.roles import ROLES_READING_PATIENT_MESSAGES, Scope
from saas.common import parse_big_id, parse_id
from saas.extensions import db
from saas.friends import services as friends
from saas.friends.models import Friend
from saas.inbox import canned, sending, services
from saas.inbox.models import STATUS_LABELS, ConversationStatus
from saas.members.services import members_of
from saas.portal import dashboard, menu
from saas.privacy.sensitive import detector_for
from saas.receipts import timeline
from saas.tenancy.access import current_clinic, require

bp = Blueprint("inbox", __name__, url_prefix="/c/<clinic>/inbox")
CONVERSATION_PAGE = 200  # the newest messages shown; sends received in the same stretch join them


def _filter_from_request() -> services.InboxFilter:
    return services.InboxFilter(
        mine=request.args.get("mine") == "1",
        unassigned=request.args.get("unassigned") == "1",
        status=request.args.get("status", ""),
    )


def _list_context(selected_id: int | None = None) -> dict:
    criteria = _filter_from_request()
    page = services.conversations(criteria, current_user.id, before=request.args.get("before"))
    record_list_view(
        [row.friend.id for row in page.rows],
        [row.last_message.id for row in page.rows if row.last_message],
        poll=request.headers.get("HX-Request") == "true",
        deferred=True,
    )
    return {
        "rows": page.rows,
        "next_before": page.next_before,
        "changed": services.latest_change(),
        "criteria": criteria,
        "selected_id": selected_id,
        "status_labels": STATUS_LABELS,
        "filter_args": {k: v for k, v in request.args.items() if k in ("mine", "unassigned", "status") and v},
    }


def _friend_or_404(friend_id: int) -> Friend:
    friend = db.session.get(Friend, friend_id)
    if friend is None or friend.status == services.ERASED:  # another clinic's friend is invisible here
        abort(404)
    return friend


def responders(clinic) -> list:
    """Members of the clinic who may answer chats (platform staff excluded)."""
    users = {}
    for row in members_of(clinic):
        if row.membership.scope != Scope.PLATFORM and row.membership.role in ROLES_READING_PATIENT_MESSAGES:
            users[row.user.id] = row.user
    return sorted(users.values(), key=lambda u: u.name)


@bp.get("/")
@login_required
@require("chat.read")
def index():
    """Conversations, newest first, with filters."""
    return render_template("inbox/index.html", **_list_context())


@bp.get("/list")
@login_required
@require("chat.read")
def conversation_list():
    """The list alone (re-rendered when the poll says something changed, or for the next page)."""
    return render_template("inbox/_list.html", **_list_context(request.args.get("selected", type=parse_id)))


@bp.get("/changes")
@login_required
@require("chat.read")
def changes():
    """The list's cheap poll: 204 when nothing changed since ``since``, else a trigger to re-render it."""
    if request.args.get("since", "") == services.latest_change():
        return "", 204
    return "", 200, {"HX-Trigger": "inbox-changed"}


def _conversation_page(
    friend: Friend, *, conversation=None, draft: str = "", refused: str = "", needs_confirm: list | None = None
):
    clinic = current_clinic()
    conversation = conversation or services.get_conversation(friend)
    bot_paused, urgent_at = services.chat_state(friend)
    messages = friends.conversation(friend, limit=CONVERSATION_PAGE)
    entries = timeline.interleave(friend.id, messages, page_was_full=len(messages) == CONVERSATION_PAGE)
    sends = [e.sent for e in entries if e.sent is not None]
    # Also when a refused send shows the conversation again; written with the list's view after
    # rendering (committing first expired every message shown: a query per message, 136 statements).
    record_conversation_view(friend.id, deferred=True)
    return render_template(
        "inbox/conversation.html",
        friend=friend,
        conversation=conversation,
        status=services.status_of(friend, conversation),
        messages=messages,
        entries=entries,
        senders=services.senders_of(messages),
        urgent_at=urgent_at,
        last_id=messages[-1].id if messages else 0,
        last_receipt_id=max(s.receipt.id for s in sends) if sends else timeline.newest_receipt_id(friend.id),
        detector=detector_for(clinic.id),
        plan=sending.delivery_plan(clinic, friend),
        canned=canned.canned_replies(clinic, friend),
        responders=responders(clinic),
        bot_paused=bot_paused,
        draft=draft,
        refused=refused,
        needs_confirm=needs_confirm or [],
        **_list_context(friend.id),
    )


@bp.get("/<int:friend_id>")
@login_required
@require("chat.read")
def conversation(friend_id: int):
    """One conversation. Every opening is audited and marks the messages read."""
    friend = _friend_or_404(friend_id)
    conversation = services.mark_read(friend)  # the row as updated: the page does not read it again
    return _conversation_page(friend, conversation=conversation, draft=request.args.get("draft", ""))


@bp.get("/<int:friend_id>/messages")
@login_required
@require("chat.read")
def new_messages(friend_id: int):
    """Messages newer than ``after`` (htmx polls this); showing new ones is audited as a view."""
    friend = _friend_or_404(friend_id)
    after = request.args.get("after", type=parse_big_id) or 0
    after_receipt = request.args.get("after_receipt", type=parse_big_id) or 0
    fresh = friends.conversation(friend, limit=50, after=after)
    sends = timeline.newer_than(friend.id, after_receipt)
    if fresh:
        services.mark_read(friend)
    if fresh or sends:
        record_conversation_view(friend.id, live=len(fresh) + len(sends))
    return render_template(
        "inbox/_new_messages.html",
        friend=friend,
        messages=fresh,
        entries=timeline.interleave(friend.id, fresh, page_was_full=True, sends=sends),
        senders=services.senders_of(fresh),
        last_id=fresh[-1].id if fresh else after,
        last_receipt_id=max((s.receipt.id for s in sends), default=after_receipt),
        detector=detector_for(current_clinic().id),
    )


# Content types shown in the page; anything else is only downloaded (never rendered as HTML).
_INLINE_MEDIA = {"image/jpeg", "image/png", "image/gif", "image/webp", "video/mp4", "audio/x-m4a", "audio/mp4"}


@bp.get("/<int:friend_id>/media/<int:message_id>")
@login_required
@require("chat.read")
def media(friend_id: int, message_id: int):
    """A patient's image, video, audio or file, decrypted for this view (audited)."""
    from saas.friends import media as patient_media
    from saas.friends.models import MediaState, Message

    friend = _friend_or_404(friend_id)
    message = db.session.get(Message, message_id)
    row = message.media if message is not None and message.friend_id == friend.id else None
    if row is None or row.state != MediaState.STORED or message.unsent_at is not None:
        abort(404)
    record("conversation.media.view", target_type="friend", target_id=friend.id, details={"message_id": message.id})
    db.session.commit()
    inline = row.content_type in _INLINE_MEDIA
    response = make_response(patient_media.content_of(row))
    response.headers["Content-Type"] = row.content_type if inline else "application/octet-stream"
    response.headers["Content-Disposition"] = "inline" if inline else "attachment"
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.post("/<int:friend_id>/check")
@login_required
@require("chat.reply")
def check_draft(friend_id: int):
    """The composer's live warning when the draft looks like sensitive data."""
    _friend_or_404(friend_id)
    detector = detector_for(current_clinic().id)
    return render_template(
        "inbox/_sensitive.html", findings=detector.findings(request.form.get("text", "")), detector=detector
    )


@bp.get("/<int:friend_id>/canned/<int:index>")
@login_required
@require("chat.reply")
def canned_text(friend_id: int, index: int):
    """The composer's textarea filled with a canned reply (htmx swaps it in)."""
    friend = _friend_or_404(friend_id)
    replies = canned.canned_replies(current_clinic(), friend)
    if not 0 <= index < len(replies):
        abort(404)
    return render_template("inbox/_textarea.html", friend=friend, draft=replies[index].text)


@bp.post("/<int:friend_id>/send")
@login_required
@require("chat.reply")
def send(friend_id: int):
    """Send the composer's text (reply token or push, as shown), after a sensitive-data confirmation."""
    friend = _friend_or_404(friend_id)
    text = request.form.get("text", "")
    findings = detector_for(current_clinic().id).findings(text)
    if findings and request.form.get("confirm_sensitive") != "1":
        return _conversation_page(friend, draft=text, needs_confirm=findings), 422
    try:
        sending.send_text(current_clinic(), friend, text, current_user, expected_via=request.form.get("via", ""))
    except sending.SendRefused as exc:
        db.session.rollback()
        return _conversation_page(_friend_or_404(friend_id), draft=text, refused=str(exc)), 409
    flash(_("メッセージを送信しました。"), "success")
    return redirect(url_for("inbox.conversation", friend_id=friend.id, **_filters_in_form()))


def _filters_in_form() -> dict:
    return {k: v for k, v in request.form.items() if k in ("mine", "unassigned", "status") and v}


@bp.post("/<int:friend_id>/assign")
@login_required
@require("chat.reply")
def assign(friend_id: int):
    """Assign the conversation to a responder (pauses the bot) or to nobody."""
    friend = _friend_or_404(friend_id)
    value = request.form.get("user_id", "")
    user_id = current_user.id if value == "me" else parse_id(value)
    if user_id is not None and user_id not in {u.id for u in responders(current_clinic())}:
        abort(400)
    services.assign(friend, user_id)
    record("conversation.assign", target_type="friend", target_id=friend.id, details={"assignee_user_id": user_id})
    db.session.commit()
    flash(_("担当者を変更しました。") if user_id else _("担当者を外しました。"), "success")
    return redirect(url_for("inbox.conversation", friend_id=friend.id, **_filters_in_form()))


@bp.post("/<int:friend_id>/status")
@login_required
@require("chat.reply")
def set_status(friend_id: int):
    """Change the status; 解決済み hands the conversation back to the bot."""
    friend = _friend_or_404(friend_id)
    status = request.form.get("status", "")
    if status not in tuple(ConversationStatus):
        abort(400)
    services.set_status(friend, status)
    record("conversation.status", target_type="friend", target_id=friend.id, details={"status": status})
    db.session.commit()
    flash(_("ステータスを「%(label)s」にしました。", label=STATUS_LABELS[status]), "success")
    return redirect(url_for("inbox.conversation", friend_id=friend.id, **_filters_in_form()))


def _sidebar_badge(clinic) -> int:
    return services.unanswered_counts([clinic.id]).get(clinic.id, 0)


menu.register("inbox.index", _l("チャット"), "✉", "chat.read", order=15, badge=_sidebar_badge)
dashboard.register("inbox_unanswered", _l("未対応チャット"), services.unanswered_counts)
