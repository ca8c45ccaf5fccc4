"""What every sandbox Messaging API call goes through, as on LINE: bearer token, retry key,
injected failures, rate limits, ``x-line-request-id``, and the per-channel request log."""

from __future__ import annotations

import json
import re
import time

from flask import Blueprint, Response, current_app, g, jsonify, request

from .state import Channel, SandboxState, new_request_id, now_ms

RETRY_KEY_OPERATIONS = {"pushMessage", "multicast", "broadcast", "narrowcast"}
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
RATE_LIMITED = "The API rate limit has been exceeded. Try again later."

bp = Blueprint("line", __name__)


class LineError(Exception):
    """An error answer shaped like LINE's ``ErrorResponse``."""

    def __init__(self, status: int, message: str, details: list[dict] | None = None, **extra) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"message": message, **({"details": details} if details else {}), **extra}


def state() -> SandboxState:
    """The sandbox state of the running app."""
    return current_app.extensions["line_sandbox"]


def channel() -> Channel:
    """The channel authenticated for this request."""
    return g.channel


def operation() -> str:
    """LINE's operationId of the current endpoint (views are registered under it)."""
    return (request.endpoint or "").rsplit(".", 1)[-1]


def json_body() -> dict:
    """The request's JSON object, or a LINE-style 400."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise LineError(400, "The request body could not be parsed as JSON")
    return data


@bp.errorhandler(LineError)
def _line_error(error: LineError):
    return jsonify(error.body), error.status


@bp.before_request
def _authenticate_and_gate():
    g.request_id = new_request_id()
    g.started = time.monotonic()
    header = request.headers.get("Authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    found = state().by_token(token) if token else None
    if found is None:
        return jsonify(
            {"message": "Authentication failed. Confirm that the access token in the authorization header is valid."}
        ), 401
    g.channel = found
    g.retry_key = request.headers.get("X-Line-Retry-Key")  # logged for injected failures too
    with state().lock:
        if found.fail_next:
            status = found.fail_next.pop(0)
            message = RATE_LIMITED if status == 429 else "An error occurred in the server"
            return jsonify({"message": message}), status
        if not found.allow_rate(operation()):
            return jsonify({"message": RATE_LIMITED}), 429
    return _check_retry_key(found)


def _check_retry_key(found: Channel):
    key = request.headers.get("X-Line-Retry-Key")
    g.retry_key = key
    if key is None:
        return None
    if operation() not in RETRY_KEY_OPERATIONS:
        return jsonify({"message": "The X-Line-Retry-Key header is not supported for this API"}), 400
    if not UUID_RE.match(key):
        return jsonify({"message": "The value of the X-Line-Retry-Key header is invalid"}), 400
    with state().lock:
        accepted = found.retry_keys.get(key)
        if accepted is None:
            found.retry_keys[key] = {"requestId": g.request_id, "pending": True, "at": time.time()}
            return None
    body = {"message": "The retry key is already accepted"}
    if accepted.get("sentMessages"):
        body["sentMessages"] = accepted["sentMessages"]
    response = jsonify(body)
    response.status_code = 409
    response.headers["x-line-accepted-request-id"] = accepted["requestId"]
    return response


@bp.after_request
def _stamp_and_log(response: Response) -> Response:
    request_id = g.get("request_id") or new_request_id()
    response.headers["x-line-request-id"] = request_id
    found: Channel | None = g.get("channel")
    if found is None:
        return response
    _settle_retry_key(found, response)
    if found.latency_ms:
        remaining = found.latency_ms / 1000 - (time.monotonic() - g.started)
        if remaining > 0:
            time.sleep(remaining)
    with state().lock:
        found.requests.append(
            {
                "method": request.method,
                "path": request.path,
                "query": request.query_string.decode(),
                "operation": operation(),
                "status": response.status_code,
                "retry_key": request.headers.get("X-Line-Retry-Key"),
                "requestId": request_id,
                "body": _request_json(),
                "response": _response_json(response),
                "at": now_ms(),
            }
        )
    return response


def _settle_retry_key(found: Channel, response: Response) -> None:
    key = g.get("retry_key")
    if not key:
        return
    with state().lock:
        entry = found.retry_keys.get(key)
        if not entry or not entry.get("pending") or entry["requestId"] != g.request_id:
            return
        if 200 <= response.status_code < 300:
            entry["pending"] = False
            sent = (_response_json(response) or {}).get("sentMessages")
            if sent:
                entry["sentMessages"] = sent
        else:
            del found.retry_keys[key]


def _request_json():
    if not request.data or not request.is_json:
        return None
    try:
        return json.loads(request.data)
    except ValueError:
        return None


def _response_json(response: Response):
    if response.mimetype != "application/json" or response.direct_passthrough:
        return None
    try:
        return json.loads(response.get_data())
    except ValueError:
        return None
