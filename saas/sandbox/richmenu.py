"""Rich menus: create/validate/get/list/delete, image upload and download, default menu,
per-user and bulk link/unlink, aliases."""

from __future__ import annotations

import io
import re
import secrets

from flask import Response, jsonify, request

from .api import LineError, bp, channel, json_body, state
from .state import Channel
from .validation import Problems, check_action

ALIAS_RE = re.compile(r"^[a-z0-9_-]{1,32}$")
MAX_IMAGE_BYTES = 1024 * 1024


def check_rich_menu(body: dict) -> None:
    """LINE's rich menu checks: size 800..2500 wide, ≥250 high, ratio ≥1.45, ≤20 areas inside it."""
    problems = Problems()
    size = body.get("size") if isinstance(body.get("size"), dict) else {}
    width, height = size.get("width"), size.get("height")
    if not isinstance(width, int) or not 800 <= width <= 2500:
        problems.add("size.width", "must be between 800 and 2500")
    if not isinstance(height, int) or height < 250:
        problems.add("size.height", "must be at least 250")
    elif isinstance(width, int) and width / height < 1.45:
        problems.add("size", "aspect ratio (width / height) must be at least 1.45")
    if not isinstance(body.get("selected"), bool):
        problems.add("selected", "must be specified")
    problems.string(body, "name", "richMenu", 300)
    problems.string(body, "chatBarText", "richMenu", 14)
    areas = body.get("areas")
    if not isinstance(areas, list) or len(areas) > 20:
        problems.add("areas", "Size must be between 0 and 20")
        areas = []
    for index, area in enumerate(areas):
        _check_area(area, f"areas[{index}]", width, height, problems)
    problems.raise_if_any()


def _check_area(area, prop: str, width, height, problems: Problems) -> None:
    bounds = area.get("bounds") if isinstance(area, dict) else None
    if not isinstance(bounds, dict) or not all(isinstance(bounds.get(k), int) for k in ("x", "y", "width", "height")):
        problems.add(f"{prop}.bounds", "must be specified")
    elif isinstance(width, int) and isinstance(height, int) and _outside(bounds, width, height):
        problems.add(f"{prop}.bounds", "must be inside the rich menu")
    check_action(area.get("action") if isinstance(area, dict) else None, f"{prop}.action", problems)


def _outside(bounds: dict, width: int, height: int) -> bool:
    return bounds["x"] + bounds["width"] > width or bounds["y"] + bounds["height"] > height


def _menu(found: Channel, rich_menu_id: str) -> dict:
    menu = found.rich_menus.get(rich_menu_id)
    if menu is None:
        raise LineError(404, "Not found")
    return menu


def _menu_with_image(found: Channel, rich_menu_id: str) -> dict:
    menu = _menu(found, rich_menu_id)
    if rich_menu_id not in found.rich_menu_images:
        raise LineError(400, "must upload richmenu image before applying it to user")
    return menu


@bp.post("/v2/bot/richmenu", endpoint="createRichMenu")
def create_rich_menu():
    """Create a rich menu; returns its id."""
    body = json_body()
    check_rich_menu(body)
    rich_menu_id = "richmenu-" + secrets.token_hex(16)
    keys = ("size", "selected", "name", "chatBarText", "areas")
    with state().lock:
        channel().rich_menus[rich_menu_id] = {"richMenuId": rich_menu_id, **{k: body[k] for k in keys}}
    return jsonify({"richMenuId": rich_menu_id})


@bp.post("/v2/bot/richmenu/validate", endpoint="validateRichMenuObject")
def validate_rich_menu():
    """Validate a rich menu object without creating it."""
    check_rich_menu(json_body())
    return jsonify({})


@bp.get("/v2/bot/richmenu/list", endpoint="getRichMenuList")
def list_rich_menus():
    """Every rich menu of the channel."""
    with state().lock:
        return jsonify({"richmenus": list(channel().rich_menus.values())})


@bp.get("/v2/bot/richmenu/<rich_menu_id>", endpoint="getRichMenu")
def get_rich_menu(rich_menu_id: str):
    """One rich menu."""
    with state().lock:
        return jsonify(_menu(channel(), rich_menu_id))


@bp.delete("/v2/bot/richmenu/<rich_menu_id>", endpoint="deleteRichMenu")
def delete_rich_menu(rich_menu_id: str):
    """Delete a rich menu; users and the default fall back to nothing."""
    with state().lock:
        found = channel()
        _menu(found, rich_menu_id)
        del found.rich_menus[rich_menu_id]
        found.rich_menu_images.pop(rich_menu_id, None)
        if found.default_rich_menu == rich_menu_id:
            found.default_rich_menu = None
        for patient in found.patients.values():
            if patient.rich_menu_id == rich_menu_id:
                patient.rich_menu_id = None
    return jsonify({})


@bp.post("/v2/bot/richmenu/<rich_menu_id>/content", endpoint="setRichMenuImage")
def upload_image(rich_menu_id: str):
    """Upload the menu image once: PNG or JPEG, at most 1 MB, exactly the menu's size."""
    mimetype = request.mimetype
    if mimetype not in {"image/png", "image/jpeg"}:
        raise LineError(415, "Unsupported Media Type")
    data = request.get_data()
    if len(data) > MAX_IMAGE_BYTES:
        raise LineError(413, "Request Entity Too Large")
    with state().lock:
        found = channel()
        menu = _menu(found, rich_menu_id)
        if rich_menu_id in found.rich_menu_images:
            raise LineError(400, "An image has already been uploaded to the richmenu")
        size = _image_size(data)
        if size != (menu["size"]["width"], menu["size"]["height"]):
            raise LineError(400, "Image size doesn't match the rich menu size")
        found.rich_menu_images[rich_menu_id] = (mimetype, data)
    return jsonify({})


def _image_size(data: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except Exception:
        raise LineError(400, "The image could not be read") from None


@bp.get("/v2/bot/richmenu/<rich_menu_id>/content", endpoint="getRichMenuImage")
def download_image(rich_menu_id: str):
    """The uploaded image (data host path)."""
    with state().lock:
        image = channel().rich_menu_images.get(rich_menu_id)
    if image is None:
        raise LineError(404, "Not found")
    return Response(image[1], mimetype=image[0])


@bp.post("/v2/bot/user/all/richmenu/<rich_menu_id>", endpoint="setDefaultRichMenu")
def set_default(rich_menu_id: str):
    """Make a menu (with its image) the default for every user."""
    with state().lock:
        _menu_with_image(channel(), rich_menu_id)
        channel().default_rich_menu = rich_menu_id
    return jsonify({})


@bp.get("/v2/bot/user/all/richmenu", endpoint="getDefaultRichMenuId")
def get_default():
    """The default menu id."""
    with state().lock:
        default = channel().default_rich_menu
    if default is None:
        raise LineError(404, "no default richmenu")
    return jsonify({"richMenuId": default})


@bp.delete("/v2/bot/user/all/richmenu", endpoint="cancelDefaultRichMenu")
def cancel_default():
    """Clear the default menu."""
    with state().lock:
        channel().default_rich_menu = None
    return jsonify({})


def _friend(found: Channel, user_id: str):
    patient = found.patients.get(user_id)
    if patient is None:
        raise LineError(400, "The user hasn't added the LINE Official Account as a friend")
    return patient


@bp.post("/v2/bot/user/<user_id>/richmenu/<rich_menu_id>", endpoint="linkRichMenuIdToUser")
def link_user(user_id: str, rich_menu_id: str):
    """Link a menu to one user."""
    with state().lock:
        found = channel()
        _menu_with_image(found, rich_menu_id)
        _friend(found, user_id).rich_menu_id = rich_menu_id
    return jsonify({})


@bp.get("/v2/bot/user/<user_id>/richmenu", endpoint="getRichMenuIdOfUser")
def user_menu(user_id: str):
    """The menu linked to a user (not the default)."""
    with state().lock:
        patient = channel().patients.get(user_id)
        linked = patient.rich_menu_id if patient else None
    if linked is None:
        raise LineError(404, "the user has no richmenu")
    return jsonify({"richMenuId": linked})


@bp.delete("/v2/bot/user/<user_id>/richmenu", endpoint="unlinkRichMenuIdFromUser")
def unlink_user(user_id: str):
    """Unlink a user's menu."""
    with state().lock:
        _friend(channel(), user_id).rich_menu_id = None
    return jsonify({})


def _user_ids(body: dict) -> list[str]:
    ids = body.get("userIds")
    if not isinstance(ids, list) or not 1 <= len(ids) <= 500:
        raise LineError(
            400,
            "The request body has 1 error(s)",
            [{"message": "Size must be between 1 and 500", "property": "userIds"}],
        )
    return ids


@bp.post("/v2/bot/richmenu/bulk/link", endpoint="linkRichMenuIdToUsers")
def bulk_link():
    """Link a menu to up to 500 users (202)."""
    body = json_body()
    ids = _user_ids(body)
    with state().lock:
        found = channel()
        _menu_with_image(found, str(body.get("richMenuId")))
        for user_id in ids:
            if user_id in found.patients:
                found.patients[user_id].rich_menu_id = body["richMenuId"]
    return jsonify({}), 202


@bp.post("/v2/bot/richmenu/bulk/unlink", endpoint="unlinkRichMenuIdFromUsers")
def bulk_unlink():
    """Unlink menus from up to 500 users (202)."""
    ids = _user_ids(json_body())
    with state().lock:
        for user_id in ids:
            if user_id in channel().patients:
                channel().patients[user_id].rich_menu_id = None
    return jsonify({}), 202


@bp.post("/v2/bot/richmenu/alias", endpoint="createRichMenuAlias")
def create_alias():
    """Create an alias (``[a-z0-9_-]{1,32}``, unique per channel) for a menu."""
    body = json_body()
    alias = body.get("richMenuAliasId")
    if not isinstance(alias, str) or not ALIAS_RE.match(alias):
        raise LineError(400, "The request body has 1 error(s)", [{"message": "invalid", "property": "richMenuAliasId"}])
    with state().lock:
        found = channel()
        _menu_with_image(found, str(body.get("richMenuId")))
        if alias in found.aliases:
            raise LineError(400, "conflict richmenu alias id")
        found.aliases[alias] = body["richMenuId"]
    return jsonify({})


@bp.get("/v2/bot/richmenu/alias/list", endpoint="getRichMenuAliasList")
def list_aliases():
    """Every alias of the channel."""
    with state().lock:
        items = channel().aliases.items()
        return jsonify({"aliases": [{"richMenuAliasId": a, "richMenuId": m} for a, m in items]})


@bp.get("/v2/bot/richmenu/alias/<alias>", endpoint="getRichMenuAlias")
def get_alias(alias: str):
    """One alias."""
    with state().lock:
        menu = channel().aliases.get(alias)
    if menu is None:
        raise LineError(404, "richmenu alias not found")
    return jsonify({"richMenuAliasId": alias, "richMenuId": menu})


@bp.post("/v2/bot/richmenu/alias/<alias>", endpoint="updateRichMenuAlias")
def update_alias(alias: str):
    """Point an alias at another menu."""
    body = json_body()
    with state().lock:
        found = channel()
        if alias not in found.aliases:
            raise LineError(400, "richmenu alias not found")
        _menu_with_image(found, str(body.get("richMenuId")))
        found.aliases[alias] = body["richMenuId"]
    return jsonify({})


@bp.delete("/v2/bot/richmenu/alias/<alias>", endpoint="deleteRichMenuAlias")
def delete_alias(alias: str):
    """Delete an alias."""
    with state().lock:
        if channel().aliases.pop(alias, None) is None:
            raise LineError(400, "richmenu alias not found")
    return jsonify({})


def menu_for(found: Channel, user_id: str) -> dict | None:
    """The menu a user sees: linked, else the default (caller holds the lock)."""
    patient = found.patients.get(user_id)
    menu_id = (patient.rich_menu_id if patient else None) or found.default_rich_menu
    return found.rich_menus.get(menu_id) if menu_id else None
