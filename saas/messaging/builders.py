"""Small constructors for LINE message objects, so callers never hand-write the wire shape."""

from __future__ import annotations


def text(body: str) -> dict:
    return {"type": "text", "text": body}


def image(url: str, preview_url: str | None = None) -> dict:
    return {"type": "image", "originalContentUrl": url, "previewImageUrl": preview_url or url}


def sticker(package_id: str | int, sticker_id: str | int) -> dict:
    return {"type": "sticker", "packageId": str(package_id), "stickerId": str(sticker_id)}


def flex(alt_text: str, contents: dict) -> dict:
    return {"type": "flex", "altText": alt_text, "contents": contents}


def buttons(alt_text: str, body: str, actions: list[dict], *, title: str = "", thumbnail_url: str = "") -> dict:
    """A buttons template (up to 4 actions; title and image optional)."""
    template: dict = {"type": "buttons", "text": body, "actions": actions}
    if title:
        template["title"] = title
    if thumbnail_url:
        template["thumbnailImageUrl"] = thumbnail_url
    return {"type": "template", "altText": alt_text, "template": template}


def message_action(label: str, body: str) -> dict:
    return {"type": "message", "label": label, "text": body}


def uri_action(label: str, uri: str) -> dict:
    return {"type": "uri", "label": label, "uri": uri}


def postback_action(label: str, data: str, display_text: str = "") -> dict:
    action = {"type": "postback", "label": label, "data": data}
    if display_text:
        action["displayText"] = display_text
    return action


def with_quick_reply(message: dict, actions: list[dict]) -> dict:
    """A copy of ``message`` with quick-reply buttons (LINE shows them on the last message)."""
    return {**message, "quickReply": {"items": [{"type": "action", "action": a} for a in actions]}}
