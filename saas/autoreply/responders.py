"""The auto-reply's place in the conversation: registered with saas.friends.hooks."""

from __future__ import annotations

from saas.autoreply import services
from saas.extensions import db
from saas.friends.hooks import (
    register_follow_responder,
    register_message_batch_preparer,
    register_message_responder,
)
from saas.tenancy.scoping import tenant_scope


def _text_of(event) -> str | None:
    """The text of a LINE message event, whether a webhook dict or an SDK object."""
    if isinstance(event, dict):
        message = event.get("message") or {}
        return message.get("text") if message.get("type") == "text" else None
    message = getattr(event, "message", None)
    return getattr(message, "text", None)


@register_message_responder
def answer_with_autoreply(clinic, friend, event) -> list[dict] | None:
    """Answer a patient's text: hand-off phrase, rule, FAQ or fallback; None while staff hold the chat."""
    text = _text_of(event)
    if not text:
        return None
    with tenant_scope(clinic.id):
        reply = services.reply_to(clinic, text, friend)
        db.session.flush()  # the webhook job commits (with the hand-off pause) when it finishes
    return reply.messages or None


@register_message_batch_preparer
def prepare_batch(clinic, friends) -> None:
    """A batch of messages: the settings, rules and these friends' conversation states, read once."""
    with tenant_scope(clinic.id):
        services.prepare_batch(clinic, [friend.line_user_id for friend in friends])


@register_follow_responder
def greet_new_friend(clinic, friend, event) -> list[dict] | None:
    """挨拶メッセージ for a new or returning friend."""
    with tenant_scope(clinic.id):
        return services.greeting(clinic, friend) or None
