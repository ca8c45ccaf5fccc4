"""The phone simulator page (``GET /_sandbox/phone``) and the control endpoints it needs."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Response, jsonify

from .api import state
from .richmenu import menu_for

bp = Blueprint("sandbox_phone", __name__, url_prefix="/_sandbox")
PAGE = Path(__file__).with_name("phone.html")


@bp.get("/phone")
def phone():
    """The simulator page (plain HTML/CSS/JS, no external assets)."""
    return Response(PAGE.read_text(encoding="utf-8"), mimetype="text/html")


@bp.get("/channels/<channel_id>/patients/<user_id>/richmenu")
def patient_menu(channel_id: str, user_id: str):
    """The rich menu the patient sees (linked, else default), or null."""
    with state().lock:
        found = state().channels.get(channel_id)
        menu = menu_for(found, user_id) if found else None
        has_image = bool(menu and menu["richMenuId"] in found.rich_menu_images)
    return jsonify({"richMenu": menu, "hasImage": has_image})


@bp.get("/channels/<channel_id>/richmenus/<rich_menu_id>/image")
def menu_image(channel_id: str, rich_menu_id: str):
    """A rich menu image without the bearer token (for the simulator)."""
    with state().lock:
        found = state().channels.get(channel_id)
        image = found.rich_menu_images.get(rich_menu_id) if found else None
    if image is None:
        return jsonify({"message": "Not found"}), 404
    return Response(image[1], mimetype=image[0])
