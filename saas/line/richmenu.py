"""Rich menu calls (Messaging API + data host), in the style of :mod:`saas.line.client`.

Menus are passed as LINE's JSON shape (``RichMenuRequest`` as a dict); the SDK checks the
shape before anything is sent and LINE's answers are translated into our exceptions.
"""

from __future__ import annotations

from linebot.v3.messaging import (
    CreateRichMenuAliasRequest,
    RichMenuBulkLinkRequest,
    RichMenuBulkUnlinkRequest,
    RichMenuRequest,
    UpdateRichMenuAliasRequest,
)

from saas.line.client import _call, _translated, blob_api, messaging_api
from saas.line.errors import LineRequestRejected

MAX_BULK_LINK = 500  # LINE's limit of user ids per bulk link call


def create(clinic, menu: dict) -> str:
    """Create a rich menu from its JSON object; returns LINE's ``richMenuId``."""
    with _translated():
        request = RichMenuRequest.from_dict(menu)
    return _call(messaging_api(clinic).create_rich_menu, request).rich_menu_id


def upload_image(clinic, rich_menu_id: str, image: bytes, content_type: str) -> None:
    """Upload the menu image (PNG/JPEG, ≤1 MB, exactly the menu's size) to the data host."""
    _call(blob_api(clinic).set_rich_menu_image, rich_menu_id, image, _headers={"Content-Type": content_type})


def delete(clinic, rich_menu_id: str) -> None:
    """Delete a rich menu (users linked to it fall back to the default)."""
    _call(messaging_api(clinic).delete_rich_menu, rich_menu_id)


def set_default(clinic, rich_menu_id: str) -> None:
    """Show this menu to every friend who has no menu of their own."""
    _call(messaging_api(clinic).set_default_rich_menu, rich_menu_id)


def link_users(clinic, rich_menu_id: str, user_ids: list[str]) -> int:
    """Link the menu to friends, 500 per call; returns how many calls were made."""
    calls = 0
    for start in range(0, len(user_ids), MAX_BULK_LINK):
        chunk = user_ids[start : start + MAX_BULK_LINK]
        request = RichMenuBulkLinkRequest(rich_menu_id=rich_menu_id, user_ids=chunk)
        _call(messaging_api(clinic).link_rich_menu_id_to_users, request)
        calls += 1
    return calls


def unlink_users(clinic, user_ids: list[str]) -> int:
    """Unlink friends' own menus (they see the default again), 500 per call; returns the calls made."""
    calls = 0
    for start in range(0, len(user_ids), MAX_BULK_LINK):
        request = RichMenuBulkUnlinkRequest(user_ids=user_ids[start : start + MAX_BULK_LINK])
        _call(messaging_api(clinic).unlink_rich_menu_id_from_users, request)
        calls += 1
    return calls


def set_alias(clinic, alias_id: str, rich_menu_id: str) -> None:
    """Point the alias (used by ``richmenuswitch`` actions) at the menu, creating it if new."""
    api = messaging_api(clinic)
    try:
        _call(api.update_rich_menu_alias, alias_id, UpdateRichMenuAliasRequest(rich_menu_id=rich_menu_id))
    except LineRequestRejected:
        request = CreateRichMenuAliasRequest(rich_menu_alias_id=alias_id, rich_menu_id=rich_menu_id)
        _call(api.create_rich_menu_alias, request)
