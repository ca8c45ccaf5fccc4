"""Messaging API send endpoints: reply, push, multicast, broadcast, narrowcast (+ progress),
validate, and the quota and per-day delivery counts."""

from __future__ import annotations

import copy
import random

from flask import g, jsonify, request

from .api import LineError, bp, channel, json_body, state
from .state import Channel, Patient, SentRequest, iso_utc, now_ms
from .validation import USER_ID_RE, Problems, check_messages, check_units

MONTHLY_LIMIT = "You have reached your monthly limit."
QUOTABLE = {"text", "textV2", "sticker", "image", "video", "template", "flex"}


def deliver(found: Channel, recipients: list[Patient], messages: list[dict], via: str) -> list[dict]:
    """Put ``messages`` in each reachable recipient's inbox; returns LINE's ``sentMessages``.

    The caller holds the state lock. Unreachable (blocked, not yet friends) recipients get nothing.
    Each message is copied once per request and shared by the inboxes (read-only), so a 500-person
    multicast costs a small entry per recipient, not a copy: the sandbox must not be the limit of
    the send benchmark.
    """
    sent = [_sent_message(message) for message in messages]
    reachable = [patient for patient in recipients if patient.reachable]
    if not reachable:
        return sent
    shared = [copy.deepcopy(message) for message in messages]
    ids = [[entry["id"]] for entry in sent] if len(reachable) == 1 else None
    at, request_id = now_ms(), g.request_id
    for index, message in enumerate(shared):
        message_ids = ids[index] if ids else state().next_message_ids(len(reachable))
        for patient, message_id in zip(reachable, message_ids, strict=True):
            patient.inbox.append({"via": via, "id": message_id, "message": message, "requestId": request_id, "at": at})
    return sent


def _sent_message(message: dict) -> dict:
    entry = {"id": state().next_message_id()}
    if message.get("type") in QUOTABLE:
        entry["quoteToken"] = "q" + entry["id"]
    return entry


def _send_counted(found: Channel, recipients: list[Patient], messages: list[dict], via: str, units=()) -> list[dict]:
    """Deliver a counted (non-reply) send, enforcing the monthly limit; records statistics."""
    reachable = [p for p in recipients if p.reachable]
    limit = found.quota_limit()
    if limit is not None and found.usage_this_month() + len(reachable) > limit:
        raise LineError(429, MONTHLY_LIMIT)
    sent = deliver(found, reachable, messages, via)
    found.count(via, len(reachable))
    found.sent_requests[g.request_id] = SentRequest(
        g.request_id, via, now_ms(), len(reachable), copy.deepcopy(messages), list(units)
    )
    return sent


def _common(body: dict, problems: Problems) -> list[dict]:
    messages = check_messages(body, problems)
    flag = body.get("notificationDisabled")
    if flag is not None and not isinstance(flag, bool):
        problems.add("notificationDisabled", "must be a boolean")
    return messages


def _patient(found: Channel, user_id) -> Patient:
    if not isinstance(user_id, str) or not USER_ID_RE.match(user_id):
        raise LineError(400, "The property, 'to', in the request body is invalid (line: -, column: -)")
    patient = found.patients.get(user_id)
    if patient is None:
        raise LineError(400, "Failed to send messages")
    return patient


@bp.post("/v2/bot/message/reply", endpoint="replyMessage")
def reply_message():
    """Reply with a single-use, short-lived reply token (free of quota)."""
    body, problems = json_body(), Problems()
    messages = _common(body, problems)
    if not isinstance(body.get("replyToken"), str) or not body["replyToken"]:
        problems.add("replyToken", "must be specified")
    problems.raise_if_any()
    found = channel()
    with state().lock:
        user_id = found.use_reply_token(body["replyToken"])
        if user_id is None:
            raise LineError(400, "Invalid reply token")
        sent = deliver(found, [found.patients[user_id]], messages, "reply")
        if found.patients[user_id].reachable:
            found.count("reply", 1)
    return jsonify({"sentMessages": sent})


def _units(body: dict, problems: Problems) -> list[str]:
    """At most one unit name; refused outright on an account that may not use units (LINE
    reserves them for corporate accounts that applied: the exact refusal is not documented)."""
    units = check_units(body, problems, 1)
    if units and not channel().aggregation_units:
        problems.add("customAggregationUnits", "This account cannot use customAggregationUnits")
    return units


@bp.post("/v2/bot/message/push", endpoint="pushMessage")
def push_message():
    """Push to one user; counts one message against the quota if delivered."""
    body, problems = json_body(), Problems()
    messages = _common(body, problems)
    units = _units(body, problems)
    if "to" not in body:
        problems.add("to", "must be specified")
    problems.raise_if_any()
    found = channel()
    with state().lock:
        patient = _patient(found, body["to"])
        sent = _send_counted(found, [patient], messages, "push", units)
    return jsonify({"sentMessages": sent})


@bp.post("/v2/bot/message/multicast", endpoint="multicast")
def multicast():
    """Send to 1..500 user ids at once."""
    body, problems = json_body(), Problems()
    messages = _common(body, problems)
    units = _units(body, problems)
    to = body.get("to")
    if not isinstance(to, list) or not 1 <= len(to) <= 500:
        problems.add("to", "Size must be between 1 and 500")
    else:
        for index, user_id in enumerate(to):
            if not isinstance(user_id, str) or not USER_ID_RE.match(user_id):
                problems.add(f"to[{index}]", "must be a valid user ID")
    problems.raise_if_any()
    found = channel()
    with state().lock:
        recipients = [found.patients[u] for u in dict.fromkeys(to) if u in found.patients]
        _send_counted(found, recipients, messages, "multicast", units)
    return jsonify({})


@bp.post("/v2/bot/message/broadcast", endpoint="broadcast")
def broadcast():
    """Send to every friend of the account."""
    body, problems = json_body(), Problems()
    messages = _common(body, problems)
    problems.raise_if_any()
    found = channel()
    with state().lock:
        _send_counted(found, list(found.patients.values()), messages, "broadcast")
    return jsonify({})


@bp.post("/v2/bot/message/narrowcast", endpoint="narrowcast")
def narrowcast():
    """Send to friends matching recipient/filter, capped by ``limit``; accepted asynchronously (202)."""
    body, problems = json_body(), Problems()
    messages = _common(body, problems)
    limit = body.get("limit") or {}
    if not isinstance(limit, dict) or ("max" in limit and (not isinstance(limit["max"], int) or limit["max"] < 1)):
        problems.add("limit.max", "must be greater than or equal to 1")
    if limit.get("forbidPartialDelivery") and not limit.get("upToRemainingQuota"):
        problems.add("limit.forbidPartialDelivery", "requires upToRemainingQuota")
    recipient = body.get("recipient")
    if recipient is not None and (not isinstance(recipient, dict) or recipient.get("type") == "audience"):
        problems.add("recipient", "audiences are not available in the sandbox")
    problems.raise_if_any()
    found = channel()
    accepted = now_ms()
    with state().lock:
        targets = [p for p in found.patients.values() if p.reachable]
        random.shuffle(targets)
        if "max" in limit:
            targets = targets[: limit["max"]]
        remaining = None if found.quota_limit() is None else found.quota_limit() - found.usage_this_month()
        if limit.get("upToRemainingQuota") and remaining is not None:
            targets = targets[: max(remaining, 0)]
        progress = {"phase": "succeeded", "acceptedTime": iso_utc(accepted), "targetCount": len(targets)}
        try:
            _send_counted(found, targets, messages, "narrowcast")
            progress.update(successCount=len(targets), failureCount=0)
        except LineError:
            progress.update(phase="failed", successCount=0, failureCount=len(targets), errorCode=1)
            progress["failedDescription"] = MONTHLY_LIMIT
        progress["completedTime"] = iso_utc(now_ms())
        found.narrowcasts[g.request_id] = progress
    return jsonify({}), 202


@bp.get("/v2/bot/message/progress/narrowcast", endpoint="getNarrowcastProgress")
def narrowcast_progress():
    """Progress of a narrowcast by its request id."""
    with state().lock:
        progress = channel().narrowcasts.get(request.args.get("requestId", ""))
    if progress is None:
        raise LineError(404, "Not found")
    return jsonify(progress)


@bp.post("/v2/bot/message/validate/<kind>", endpoint="validateMessage")
def validate_message(kind: str):
    """Validate message objects without sending them."""
    if kind not in {"reply", "push", "multicast", "narrowcast", "broadcast"}:
        raise LineError(404, "Not found")
    problems = Problems()
    check_messages(json_body(), problems)
    problems.raise_if_any()
    return jsonify({})


@bp.get("/v2/bot/message/quota", endpoint="getMessageQuota")
def message_quota():
    """The monthly target limit (``none`` when the plan has no cap)."""
    limit = channel().quota_limit()
    return jsonify({"type": "none"} if limit is None else {"type": "limited", "value": limit})


@bp.get("/v2/bot/message/quota/consumption", endpoint="getMessageQuotaConsumption")
def quota_consumption():
    """Counted messages sent this month."""
    with state().lock:
        return jsonify({"totalUsage": channel().usage_this_month()})


@bp.get("/v2/bot/message/delivery/<kind>", endpoint="getNumberOfSentMessages")
def sent_count(kind: str):
    """Messages sent on a day (yyyyMMdd, UTC+9) by reply/push/multicast/broadcast."""
    if kind not in {"reply", "push", "multicast", "broadcast"}:
        raise LineError(404, "Not found")
    day = request.args.get("date", "")
    if len(day) != 8 or not day.isdigit():
        raise LineError(
            400, "The value for the 'date' parameter is invalid", [{"property": "date", "message": "invalid"}]
        )
    if day < "20180331":
        return jsonify({"status": "out_of_service"})
    with state().lock:
        return jsonify({"status": "ready", "success": channel().daily.get((kind, day), 0)})
