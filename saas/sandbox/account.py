"""Account and user endpoints: bot info, profiles, follower ids, webhook endpoint settings."""

from __future__ import annotations

from flask import Response, jsonify, request

from .api import LineError, bp, channel, json_body, state
from .state import iso_utc, now_ms
from .webhooks import post_signed


@bp.get("/v2/bot/info", endpoint="getBotInfo")
def bot_info():
    """The bot's user id, basic id and display name."""
    found = channel()
    return jsonify(
        {
            "userId": found.bot_user_id,
            "basicId": found.basic_id,
            "displayName": found.display_name,
            "chatMode": "bot",
            "markAsReadMode": "auto",
        }
    )


@bp.get("/v2/bot/profile/<user_id>", endpoint="getProfile")
def profile(user_id: str):
    """A friend's profile; 404 for users who are not (or no longer) friends."""
    with state().lock:
        patient = channel().patients.get(user_id)
        if patient is None or not patient.reachable:
            raise LineError(404, "Not found")
        body = {"userId": patient.user_id, "displayName": patient.display_name, "language": patient.language}
        if patient.picture_url:
            body["pictureUrl"] = patient.picture_url
        if patient.status_message:
            body["statusMessage"] = patient.status_message
    return jsonify(body)


@bp.get("/v2/bot/followers/ids", endpoint="getFollowers")
def follower_ids():
    """Friends' user ids in follow order, paged by ``limit`` (≤1000) and the ``next`` token."""
    try:
        limit = int(request.args.get("limit", 300))
        start = int(request.args.get("start") or 0)
    except ValueError:
        raise LineError(400, "Invalid parameter", [{"property": "start", "message": "invalid"}]) from None
    if not channel().followers_api:
        raise LineError(403, "Access to this API is not available for your account")
    if not 1 <= limit <= 1000:
        raise LineError(400, "Invalid parameter", [{"property": "limit", "message": "must be between 1 and 1000"}])
    with state().lock:
        friends = sorted((p for p in channel().patients.values() if p.reachable), key=lambda p: p.followed_at or 0)
        ids = [p.user_id for p in friends]
    body = {"userIds": ids[start : start + limit]}
    if start + limit < len(ids):
        body["next"] = str(start + limit)
    return jsonify(body)


@bp.get("/v2/bot/channel/webhook/endpoint", endpoint="getWebhookEndpoint")
def get_webhook_endpoint():
    """The webhook URL and whether webhooks are on."""
    found = channel()
    return jsonify({"endpoint": found.webhook_url or "", "active": bool(found.webhook_url) and found.webhook_active})


@bp.put("/v2/bot/channel/webhook/endpoint", endpoint="setWebhookEndpoint")
def set_webhook_endpoint():
    """Set the webhook URL (http allowed here, unlike LINE, for loopback development)."""
    endpoint = json_body().get("endpoint")
    if not isinstance(endpoint, str) or not endpoint.startswith(("https://", "http://")) or len(endpoint) > 500:
        raise LineError(
            400, "Invalid webhook endpoint URL", [{"property": "endpoint", "message": "must be a valid URL"}]
        )
    with state().lock:
        channel().webhook_url = endpoint
        channel().webhook_active = True
    return jsonify({})


@bp.post("/v2/bot/channel/webhook/test", endpoint="testWebhookEndpoint")
def test_webhook_endpoint():
    """POST an empty-events signed webhook to the URL and report how it answered."""
    found = channel()
    body = request.get_json(silent=True) or {}
    url = body.get("endpoint") or found.webhook_url
    if not url:
        raise LineError(400, "The webhook endpoint is not set")
    outcome = post_signed(found, url, [])
    return jsonify(
        {
            "success": outcome["status"] == 200,
            "timestamp": iso_utc(now_ms()),
            "statusCode": outcome["status"],
            "reason": outcome["reason"],
            "detail": outcome["detail"],
        }
    )


@bp.get("/v2/bot/message/<message_id>/content", endpoint="getMessageContent")
def message_content(message_id: str):
    """The bytes of an image/video/audio/file a patient sent (404 once unsent or unknown)."""
    with state().lock:
        content = channel().contents.get(message_id)
    if content is None:
        raise LineError(404, "Not found")
    return Response(content[1], mimetype=content[0])
