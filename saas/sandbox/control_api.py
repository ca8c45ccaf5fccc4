"""The sandbox's own control API under ``/_sandbox/``: channels, virtual patients and their
actions (follow, block, text, postback), raw and redelivered webhooks, inboxes and logs."""

from __future__ import annotations

import secrets

from flask import Blueprint, abort, jsonify, request

from .api import state
from .state import LINE_RATE_LIMITS, Channel, Patient, iso_utc, new_user_id, now_ms
from .webhooks import (
    follow_event,
    media_event,
    postback_event,
    redelivery_of,
    send,
    text_event,
    unfollow_event,
    unsend_event,
)

bp = Blueprint("sandbox_control", __name__, url_prefix="/_sandbox")

SETTING_ALIASES = {
    "monthlyLimit": "monthly_limit",
    "webhookUrl": "webhook_url",
    "latencyMs": "latency_ms",
    "failNext": "fail_next",
    "rateLimits": "rate_limits",
    "replyTokenTtlS": "reply_token_ttl_s",
    "webhookTimeoutS": "webhook_timeout_s",
    "privacyThreshold": "privacy_threshold",
    "aggregationUnits": "aggregation_units",
    "displayName": "display_name",
    "followersApi": "followers_api",
    "requestStatistics": "request_statistics",
}
SETTINGS = {
    "plan",
    "monthly_limit",
    "webhook_url",
    "webhook_active",
    "latency_ms",
    "fail_next",
    "rate_limits",
    "reply_token_ttl_s",
    "webhook_timeout_s",
    "privacy_threshold",
    "aggregation_units",
    "display_name",
    "followers_api",
    "request_statistics",
}


def _body() -> dict:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


def _channel(channel_id: str) -> Channel:
    found = state().channels.get(channel_id)
    if found is None:
        abort(404, f"no channel {channel_id}")
    return found


def _patient(found: Channel, user_id: str) -> Patient:
    patient = found.patients.get(user_id)
    if patient is None:
        abort(404, f"no patient {user_id}")
    return patient


def _wants_delivery(body: dict) -> bool:
    return body.get("deliver", True) is not False and request.args.get("deliver") not in {"0", "false"}


def _dispatch(found: Channel, event: dict, body: dict):
    status = send(state(), found, [event]) if _wants_delivery(body) else None
    return jsonify({"event": event, "status": status})


@bp.post("/reset")
def reset():
    """Forget everything."""
    state().reset()
    return jsonify({})


@bp.get("/channels")
def list_channels():
    """Channels with their patient counts (for the phone simulator)."""
    with state().lock:
        return jsonify(
            [
                {
                    "channelId": c.channel_id,
                    "displayName": c.display_name,
                    "botUserId": c.bot_user_id,
                    "patients": len(c.patients),
                }
                for c in state().channels.values()
            ]
        )


@bp.post("/channels")
def add_channel():
    """Register a channel: ``{channelId, channelSecret, accessToken, botUserId?, webhookUrl?, plan?, monthlyLimit?}``."""
    body = _body()
    missing = [k for k in ("channelId", "channelSecret", "accessToken") if not body.get(k)]
    if missing:
        return jsonify({"error": f"missing {', '.join(missing)}"}), 400
    found = Channel(
        channel_id=str(body["channelId"]),
        secret=body["channelSecret"],
        access_token=body["accessToken"],
        bot_user_id=body.get("botUserId") or new_user_id(),
        webhook_url=body.get("webhookUrl"),
        plan=body.get("plan", "free"),
        monthly_limit=body.get("monthlyLimit"),
        display_name=body.get("displayName") or "サンドボックス公式アカウント",
    )
    state().add_channel(found)
    return jsonify(_describe(found)), 201


def _describe(found: Channel) -> dict:
    return {
        "channelId": found.channel_id,
        "botUserId": found.bot_user_id,
        "basicId": found.basic_id,
        "displayName": found.display_name,
        "webhookUrl": found.webhook_url,
        "plan": found.plan,
        "monthlyLimit": found.quota_limit(),
        "usage": found.usage_this_month(),
    }


@bp.put("/channels/<channel_id>")
def configure(channel_id: str):
    """Change settings: rate_limits ({operationId: [count, seconds]} or "line" or null),
    fail_next [status...], monthly_limit, plan, latency_ms, webhook_url, reply_token_ttl_s, ..."""
    with state().lock:
        found = _channel(channel_id)
        for key, value in _body().items():
            name = SETTING_ALIASES.get(key, key)
            if name not in SETTINGS:
                return jsonify({"error": f"unknown setting {key}"}), 400
            if name == "rate_limits":
                value = _rate_limits(value)
                found.hits.clear()
            elif name == "fail_next":
                value = [int(v) for v in value or []]
            setattr(found, name, value)
        return jsonify(_describe(found))


def _rate_limits(value) -> dict:
    if value == "line":
        return dict(LINE_RATE_LIMITS)
    return {op: (int(limit[0]), float(limit[1])) for op, limit in (value or {}).items()}


@bp.post("/channels/<channel_id>/patients")
def add_patient(channel_id: str):
    """Create a virtual patient (not yet a friend): ``{displayName, userId?, pictureUrl?, language?}``."""
    body = _body()
    with state().lock:
        found = _channel(channel_id)
        patient = Patient(
            user_id=body.get("userId") or new_user_id(),
            display_name=body.get("displayName") or "患者",
            picture_url=body.get("pictureUrl"),
            language=body.get("language") or "ja",
            status_message=body.get("statusMessage"),
        )
        found.patients.setdefault(patient.user_id, patient)
    return jsonify({"userId": patient.user_id}), 201


@bp.post("/channels/<channel_id>/patients/bulk")
def add_patients(channel_id: str):
    """Create many patients at once, already friends, without webhooks (for large sends):
    ``{userIds: [...], following?: true}``."""
    body = _body()
    user_ids = body.get("userIds")
    if not isinstance(user_ids, list):
        return jsonify({"error": "userIds must be a list"}), 400
    following = body.get("following", True) is not False
    with state().lock:
        found = _channel(channel_id)
        at = now_ms()
        for user_id in user_ids:
            patient = found.patients.setdefault(str(user_id), Patient(user_id=str(user_id), display_name="患者"))
            patient.following, patient.followed_at = following, patient.followed_at or (at if following else None)
    return jsonify({"added": len(user_ids)}), 201


@bp.get("/channels/<channel_id>/patients")
def list_patients(channel_id: str):
    """Every virtual patient of a channel with friendship status."""
    with state().lock:
        found = _channel(channel_id)
        return jsonify(
            [
                {
                    "userId": p.user_id,
                    "displayName": p.display_name,
                    "following": p.following,
                    "blocked": p.blocked,
                    "richMenuId": p.rich_menu_id,
                }
                for p in found.patients.values()
            ]
        )


@bp.post("/channels/<channel_id>/patients/<user_id>/follow")
def follow(channel_id: str, user_id: str):
    """Add the account as a friend (or unblock it) and deliver a follow event."""
    with state().lock:
        found = _channel(channel_id)
        patient = _patient(found, user_id)
        unblocked = patient.blocked
        patient.following, patient.blocked = True, False
        patient.followed_at = patient.followed_at or now_ms()
        event = follow_event(found, patient, unblocked=unblocked)
    return _dispatch(found, event, _body())


@bp.post("/channels/<channel_id>/patients/<user_id>/unfollow")
def unfollow(channel_id: str, user_id: str):
    """Block the account and deliver an unfollow event."""
    with state().lock:
        found = _channel(channel_id)
        patient = _patient(found, user_id)
        patient.blocked, patient.blocked_at = True, now_ms()
        event = unfollow_event(patient)
    return _dispatch(found, event, _body())


@bp.post("/channels/<channel_id>/patients/<user_id>/messages")
def send_text(channel_id: str, user_id: str):
    """The patient sends a text message: ``{text}``."""
    body = _body()
    text = body.get("text")
    if not isinstance(text, str) or not text:
        return jsonify({"error": "text is required"}), 400
    with state().lock:
        found = _channel(channel_id)
        patient = _patient(found, user_id)
        if patient.blocked:
            return jsonify({"error": "a patient who blocked the account cannot send messages"}), 409
        event = text_event(found, patient, text, state().next_message_id())
        patient.sent.append({"type": "text", "text": text, "id": event["message"]["id"], "at": event["timestamp"]})
    return _dispatch(found, event, body)


MEDIA_TYPES = {"image": "image/png", "video": "video/mp4", "audio": "audio/x-m4a", "file": "application/pdf"}


def _sample_image() -> bytes:
    """A small PNG for patients who send "a photo" without giving one."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (6, 199, 85)).save(buffer, format="PNG")
    return buffer.getvalue()


def _media_extra(kind: str, body: dict, size: int) -> dict:
    if kind == "file":
        return {"fileName": str(body.get("fileName") or "document.pdf"), "fileSize": size}
    if kind in ("video", "audio"):
        return {"duration": int(body.get("duration") or 1000)}
    return {}


@bp.post("/channels/<channel_id>/patients/<user_id>/media")
def send_media(channel_id: str, user_id: str):
    """The patient sends an image, video, audio or file: ``{type, dataBase64?, contentType?, fileName?}``."""
    import base64

    body = _body()
    kind = body.get("type", "image")
    if kind not in MEDIA_TYPES:
        return jsonify({"error": f"type must be one of {sorted(MEDIA_TYPES)}"}), 400
    data = base64.b64decode(body["dataBase64"]) if body.get("dataBase64") else _sample_image()
    content_type = body.get("contentType") or ("image/png" if not body.get("dataBase64") else MEDIA_TYPES[kind])
    with state().lock:
        found = _channel(channel_id)
        patient = _patient(found, user_id)
        if patient.blocked:
            return jsonify({"error": "a patient who blocked the account cannot send messages"}), 409
        message_id = state().next_message_id()
        found.contents[message_id] = (content_type, data)
        event = media_event(found, patient, kind, message_id, _media_extra(kind, body, len(data)))
        patient.sent.append({"type": kind, "text": f"［{kind}］", "id": message_id, "at": event["timestamp"]})
    return _dispatch(found, event, body)


@bp.post("/channels/<channel_id>/patients/<user_id>/unsend")
def unsend(channel_id: str, user_id: str):
    """The patient unsends one of their messages: ``{messageId}``; its content is gone from LINE too."""
    body = _body()
    message_id = str(body.get("messageId") or "")
    with state().lock:
        found = _channel(channel_id)
        patient = _patient(found, user_id)
        found.contents.pop(message_id, None)
        patient.sent = [m for m in patient.sent if m.get("id") != message_id]
        event = unsend_event(patient, message_id)
    return _dispatch(found, event, body)


@bp.post("/channels/<channel_id>/patients/<user_id>/postbacks")
def postback(channel_id: str, user_id: str):
    """The patient taps a postback action: ``{data, params?, label?}``."""
    body = _body()
    if not isinstance(body.get("data"), str):
        return jsonify({"error": "data is required"}), 400
    with state().lock:
        found = _channel(channel_id)
        patient = _patient(found, user_id)
        if patient.blocked:
            return jsonify({"error": "a patient who blocked the account cannot tap"}), 409
        event = postback_event(found, patient, body["data"], body.get("params"))
        if body.get("label"):
            patient.sent.append({"type": "postback", "text": body["label"], "at": event["timestamp"]})
    return _dispatch(found, event, body)


@bp.post("/channels/<channel_id>/deliver")
def deliver_raw(channel_id: str):
    """Deliver raw events as ONE signed webhook request (batches, malformed events)."""
    events = _body().get("events")
    if not isinstance(events, list):
        return jsonify({"error": "events must be a list"}), 400
    with state().lock:
        found = _channel(channel_id)
    return jsonify({"status": send(state(), found, events)})


@bp.post("/channels/<channel_id>/redeliver")
def redeliver(channel_id: str):
    """Deliver a past event again with ``deliveryContext.isRedelivery`` true."""
    with state().lock:
        found = _channel(channel_id)
        event = redelivery_of(found, str(_body().get("webhookEventId")))
    if event is None:
        return jsonify({"error": "unknown webhookEventId"}), 404
    return jsonify({"event": event, "status": send(state(), found, [event])})


@bp.get("/channels/<channel_id>/patients/<user_id>/inbox")
def inbox(channel_id: str, user_id: str):
    """Messages the bot sent to this patient, oldest first."""
    with state().lock:
        return jsonify(list(_patient(_channel(channel_id), user_id).inbox))


def _coupon_shown(found: Channel, message: dict) -> dict:
    """What the phone shows for a ``coupon`` message: the coupon as it is now (closed ones too)."""
    if message.get("type") != "coupon":
        return {}
    return {"coupon": found.coupons.get(message.get("couponId"))}


@bp.get("/channels/<channel_id>/patients/<user_id>/chat")
def chat(channel_id: str, user_id: str):
    """Both sides of the conversation in time order (for the phone simulator)."""
    with state().lock:
        patient = _patient(_channel(channel_id), user_id)
        found = _channel(channel_id)
        mine = [{"from": "patient", **m} for m in patient.sent]
        theirs = [{"from": "bot", **m, **_coupon_shown(found, m["message"])} for m in patient.inbox]
        return jsonify(
            {
                "patient": {
                    "userId": patient.user_id,
                    "displayName": patient.display_name,
                    "following": patient.following,
                    "blocked": patient.blocked,
                },
                "messages": sorted(mine + theirs, key=lambda m: m["at"]),
            }
        )


@bp.get("/channels/<channel_id>/requests")
def request_log(channel_id: str):
    """Every Messaging API call the channel made (method, path, status, retry key, bodies)."""
    with state().lock:
        return jsonify(list(_channel(channel_id).requests))


@bp.get("/channels/<channel_id>/webhook-deliveries")
def webhook_deliveries(channel_id: str):
    """Every webhook request sent and how the product answered."""
    with state().lock:
        return jsonify(list(_channel(channel_id).deliveries))


@bp.get("/channels/<channel_id>/reply-tokens")
def reply_tokens(channel_id: str):
    """Count of outstanding reply tokens (for debugging)."""
    with state().lock:
        return jsonify({"outstanding": len(_channel(channel_id).reply_tokens), "at": iso_utc(now_ms())})


def new_secret() -> str:
    """A random channel secret (32 hex chars), as LINE issues."""
    return secrets.token_hex(16)
