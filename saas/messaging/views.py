"""The composer (メッセージ作成): build up to five messages with a live LINE-style preview."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.delivery.services import create_draft
from saas.messaging.composer import ACTION_KINDS, ACTION_SLOTS, SLOT_TYPES, SLOTS, compose
from saas.messaging.variables import VARIABLES, sample_context
from saas.portal import menu
from saas.tenancy.access import current_clinic, require

bp = Blueprint("messaging", __name__)


def _page(values, composition=None, preview=None, status: int = 200):
    return (
        render_template(
            "messaging/compose.html",
            values=values,
            composition=composition,
            preview=preview or [],
            slot_types=SLOT_TYPES,
            action_kinds=ACTION_KINDS,
            slots=SLOTS,
            action_slots=ACTION_SLOTS,
            variables=VARIABLES,
        ),
        status,
    )


@bp.get("/c/<clinic>/messages/compose")
@login_required
@require("messages.send")
def compose_page():
    return _page({"m0_type": "text"})


@bp.post("/c/<clinic>/messages/preview")
@login_required
@require("messages.send")
def preview():
    """htmx: the preview bubbles, and each slot's errors swapped in beside it."""
    composition, rendered = compose(request.form, sample_context(current_clinic()))
    return render_template("messaging/_preview.html", composition=composition, preview=rendered, slots=SLOTS, oob=True)


@bp.post("/c/<clinic>/messages/send")
@login_required
@require("messages.send")
def send():
    """Checks the messages, keeps them as a draft delivery and continues to choosing the audience."""
    composition, rendered = compose(request.form, sample_context(current_clinic()))
    if composition.problems:
        return _page(request.form, composition, rendered, status=422)
    draft = create_draft(composition.messages)
    return redirect(url_for("delivery.new_delivery", draft=draft.id))


menu.register("messaging.compose_page", _l("メッセージ作成"), "✉", "messages.send", order=20)


@bp.app_template_filter("flex_texts")
def flex_texts(container, limit: int = 12) -> list[str]:
    """The text components of a Flex container, in order, for the preview."""
    found: list[str] = []

    def walk(node) -> None:
        if isinstance(node, dict):
            if node.get("type") == "text" and isinstance(node.get("text"), str):
                found.append(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(container)
    return found[:limit]
