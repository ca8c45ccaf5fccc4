"""Rich menus: feature bindings resolved per clinic, LINE's menu object, and deployment
(create → upload image → default / alias / link to a tag's friends)."""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from urllib.parse import quote

import sqlalchemy as sa
from flask import current_app
from flask_babel import gettext as _

from saas.booking.models import BookingMode
from saas.booking.postbacks import booking_page_url
from saas.booking.services import get_settings as booking_settings
from saas.cards import services as cards
from saas.common import clinic_row, utcnow
from saas.extensions import db
from saas.friends.models import Friend, FriendStatus, FriendTag
from saas.line import richmenu as line_richmenu
from saas.line.errors import LineError
from saas.links.services import track_rich_menu
from saas.richmenu import render
from saas.richmenu.models import MenuLinks, OrganizationLinks, RichMenu

BINDING = re.compile(r"\{\{\s*([a-z_]+\.[a-z_]+)\s*\}\}")
ACTION_TYPES = {"uri", "postback", "message", "richmenuswitch"}
ALIAS_RE = re.compile(r"^[a-z0-9_-]{1,32}$")


class MenuProblem(ValueError):
    """The menu cannot be deployed as it is; the message says what to fix (Japanese)."""


@dataclass(frozen=True)
class Deployed:
    rich_menu_id: str
    linked_friends: int
    link_calls: int


def get_links(clinic_id: int) -> MenuLinks:
    return clinic_row(MenuLinks, clinic_id)


def get_organization_links(organization_id: int) -> OrganizationLinks:
    """The organization's group-wide links (a blank row, not yet saved, when it has none)."""
    found = db.session.scalars(
        sa.select(OrganizationLinks).where(OrganizationLinks.organization_id == organization_id)
    ).first()
    return found or OrganizationLinks(organization_id=organization_id, recruitment_url="", online_consultation_url="")


def set_organization_links(organization_id: int, **urls: str) -> OrganizationLinks:
    """Create or update the organization's links (recruitment_url, online_consultation_url)."""
    links = get_organization_links(organization_id)
    for name, value in urls.items():
        setattr(links, name, value)
    db.session.add(links)
    return links


def card_page_url(clinic) -> str:
    """The patient's shop card page, when the clinic uses the card and LINE Login (else no link)."""
    if not cards.get_settings(clinic.id).enabled or not booking_settings(clinic.id).login_ready:
        return ""
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + f"/book/{clinic.slug}/card/"


def _booking_url(clinic) -> str:
    settings = booking_settings(clinic.id)
    if settings.mode == BookingMode.EXTERNAL:
        return settings.external_url
    if settings.mode == BookingMode.NATIVE:
        return booking_page_url(clinic)
    return clinic.website_url


def binding_values(clinic) -> dict[str, str]:
    """What ``{{clinic.*}}`` and ``{{organization.*}}`` bindings mean for this clinic."""
    links, group = get_links(clinic.id), get_organization_links(clinic.organization_id)
    maps = f"https://www.google.com/maps/search/?api=1&query={quote(clinic.address)}" if clinic.address else ""
    return {
        "clinic.booking_url": _booking_url(clinic),
        "clinic.access_url": links.access_url or maps,
        "clinic.website_url": clinic.website_url,
        "clinic.phone_url": f"tel:{clinic.phone}" if clinic.phone else "",
        "clinic.card_url": card_page_url(clinic),
        # The clinic's own value wins over the organization's group-wide one.
        "organization.recruitment_url": links.recruitment_url or group.recruitment_url,
        "organization.online_consultation_url": links.online_consultation_url or group.online_consultation_url,
    }


def _resolve(text: str, values: dict[str, str], label: str) -> str:
    def value(match: re.Match) -> str:
        found = values.get(match.group(1))
        if not found:
            raise MenuProblem(_("「%(label)s」のリンク（%(link)s）が未設定です", label=label, link=match.group(1)))
        return found

    return BINDING.sub(value, text)


def line_action(area: dict, values: dict[str, str]) -> dict:
    """The LINE action object of an area, bindings resolved."""
    action, label = dict(area.get("action") or {}), str(area.get("label") or "")[:20]
    kind = action.get("type")
    if kind == "uri":
        uri = _resolve(str(action.get("uri") or ""), values, label)
        if not uri.startswith(("https://", "http://", "tel:", "line://")):
            raise MenuProblem(_("「%(label)s」のURLが正しくありません", label=label))
        return {"type": "uri", "label": label, "uri": uri}
    if kind == "message":
        return {"type": "message", "label": label, "text": _resolve(str(action.get("text") or label), values, label)}
    if kind == "postback":
        return {"type": "postback", "label": label, "data": str(action.get("data") or "")[:300]}
    if kind == "richmenuswitch":
        alias = str(action.get("richMenuAliasId") or "")
        if not ALIAS_RE.match(alias):
            raise MenuProblem(_("「%(label)s」の切り替え先エイリアスが正しくありません", label=label))
        return {"type": "richmenuswitch", "label": label, "richMenuAliasId": alias, "data": f"richmenu:{alias}"}
    raise MenuProblem(_("「%(label)s」のアクションを選んでください", label=label))


def line_menu(menu: RichMenu, clinic) -> dict:
    """LINE's RichMenuRequest object for this layout."""
    width, height = menu.dimensions
    values = binding_values(clinic)
    areas = []
    for area in menu.areas:
        bounds = {k: int(area[k]) for k in ("x", "y", "width", "height")}
        if (
            bounds["x"] < 0
            or bounds["y"] < 0
            or bounds["x"] + bounds["width"] > width
            or bounds["y"] + bounds["height"] > height
        ):
            raise MenuProblem(_("「%(label)s」の範囲がメニューの外にはみ出しています", label=area.get("label")))
        areas.append({"bounds": bounds, "action": line_action(area, values)})
    if not areas or len(areas) > 20:
        raise MenuProblem(_("タップ領域は1〜20個にしてください"))
    return {
        "size": {"width": width, "height": height},
        "selected": menu.is_default,
        "name": menu.name[:300],
        "chatBarText": menu.chat_bar_text[:14] or "メニュー",
        "areas": areas,
    }


def menu_image(menu: RichMenu) -> tuple[bytes, str]:
    """The uploaded image, or one rendered from the layout."""
    if menu.image:
        return menu.image, menu.image_type
    return render.render_png(*menu.dimensions, menu.areas), "image/png"


def _segment_user_ids(tag_id: int) -> list[str]:
    query = (
        sa.select(Friend.line_user_id)
        .join(FriendTag, FriendTag.friend_id == Friend.id)
        .where(FriendTag.tag_id == tag_id, Friend.status == FriendStatus.FOLLOWING)
        .order_by(Friend.id)
    )
    return list(db.session.scalars(query))


def deploy(clinic, menu: RichMenu) -> Deployed:
    """Publish the menu: create it on LINE, upload its image, then make it the default, point
    its alias at it and link it to the friends of its tag. The previous LINE menu is deleted."""
    request = track_rich_menu(clinic.id, menu.id, line_menu(menu, clinic))
    image, content_type = menu_image(menu)
    rich_menu_id = line_richmenu.create(clinic, request)
    try:
        line_richmenu.upload_image(clinic, rich_menu_id, image, content_type)
    except LineError:
        line_richmenu.delete(clinic, rich_menu_id)
        raise
    if menu.is_default:
        line_richmenu.set_default(clinic, rich_menu_id)
    if menu.alias_id:
        line_richmenu.set_alias(clinic, menu.alias_id, rich_menu_id)
    user_ids = _segment_user_ids(menu.segment_tag_id) if menu.segment_tag_id else []
    calls = line_richmenu.link_users(clinic, rich_menu_id, user_ids) if user_ids else 0
    previous, menu.line_rich_menu_id, menu.deployed_at = menu.line_rich_menu_id, rich_menu_id, utcnow()
    db.session.commit()
    if previous:
        with contextlib.suppress(LineError):  # already gone on LINE's side
            line_richmenu.delete(clinic, previous)
    return Deployed(rich_menu_id, len(user_ids), calls)
