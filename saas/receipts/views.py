"""The friend page's "受け取ったメッセージ" section (data for ``receipts/_friend_received.html``)."""

from __future__ import annotations

from flask import Blueprint

from saas.receipts import timeline

bp = Blueprint("receipts", __name__)
FRIEND_PAGE_SENDS = 30


@bp.app_context_processor
def _friend_section() -> dict:
    """The friend page asks for the friend's newest receipts when it renders."""
    return {"friend_received": friend_received, "friend_clicked": friend_clicked}


def friend_received(friend) -> list[timeline.Received]:
    """The friend's newest sends, newest first (an index range on the friend's receipts)."""
    return timeline.received(friend.id, limit=FRIEND_PAGE_SENDS)


def friend_clicked(friend) -> list[timeline.Clicked]:
    """The friend's newest taps on the links we sent them, newest first."""
    return timeline.clicked(friend.id, limit=FRIEND_PAGE_SENDS)
