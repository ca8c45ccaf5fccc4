"""Statistics (insight.yml): followers, message deliveries, per-request and per-unit events,
plus the aggregation-unit usage endpoints. Impressions and clicks come from the control API
(``/_sandbox/channels/{id}/patients/{uid}/open|click``)."""

from __future__ import annotations

from datetime import datetime

from flask import jsonify, request

from .api import LineError, bp, channel, state
from .control_api import bp as control_bp
from .state import JST, Channel, SentRequest, jst_date, now_ms

DELIVERY_KEYS = {
    "broadcast": "apiBroadcast",
    "push": "apiPush",
    "multicast": "apiMulticast",
    "narrowcast": "apiNarrowcast",
    "reply": "apiReply",
}


def _date_arg(name: str) -> str:
    value = request.args.get(name, "")
    try:
        datetime.strptime(value, "%Y%m%d")
    except ValueError:
        raise LineError(
            400, f"The value for the '{name}' parameter is invalid", [{"property": name, "message": "invalid"}]
        ) from None
    return value


def _end_of_day_ms(day: str) -> int:
    return int(datetime.strptime(day, "%Y%m%d").replace(tzinfo=JST).timestamp() * 1000) + 86_400_000


def _private(found: Channel, value: int) -> int | None:
    """LINE hides interaction counts below its privacy threshold (null)."""
    return value if value >= found.privacy_threshold else None


@bp.get("/v2/bot/insight/followers", endpoint="getNumberOfFollowers")
def followers():
    """Friends added (ever), reachable friends and blocks as of the end of a day."""
    day = _date_arg("date")
    cutoff = _end_of_day_ms(day)
    with state().lock:
        patients = list(channel().patients.values())
    ever = [p for p in patients if p.followed_at and p.followed_at < cutoff]
    blocks = [p for p in ever if p.blocked and p.blocked_at and p.blocked_at < cutoff]
    return jsonify(
        {"status": "ready", "followers": len(ever), "targetedReaches": len(ever) - len(blocks), "blocks": len(blocks)}
    )


@bp.get("/v2/bot/insight/message/delivery", endpoint="getNumberOfMessageDeliveries")
def deliveries():
    """Messages delivered on a day by kind."""
    day = _date_arg("date")
    body = {"status": "ready"}
    with state().lock:
        daily = dict(channel().daily)
    for via, key in DELIVERY_KEYS.items():
        body[key] = daily.get((via, day), 0)
    return jsonify(body)


@bp.get("/v2/bot/insight/demographic", endpoint="getFriendsDemographics")
def demographics():
    """Friends' demographics: the sandbox knows nothing about its patients, so every share is
    ``unknown``; ``available`` is false below the privacy threshold, as for a small account."""
    with state().lock:
        found = channel()
        following = sum(1 for p in found.patients.values() if not p.blocked)
        available = following >= max(found.privacy_threshold, 1)
    if not available:
        return jsonify({"available": False})
    unknown = {"percentage": 100.0}
    return jsonify(
        {
            "available": True,
            "genders": [{"gender": "unknown", **unknown}],
            "ages": [{"age": "unknown", **unknown}],
            "areas": [{"area": "unknown", **unknown}],
            "appTypes": [{"appType": "others", **unknown}],
            "subscriptionPeriods": [{"subscriptionPeriod": "unknown", **unknown}],
        }
    )


@bp.get("/v2/bot/insight/message/event", endpoint="getMessageEvent")
def message_event():
    """Impressions and clicks of one send request."""
    with state().lock:
        found = channel()
        sent = found.sent_requests.get(request.args.get("requestId", ""))
        if sent is None or (found.request_statistics == "line" and sent.via not in ("broadcast", "narrowcast")):
            raise LineError(404, "Not found")
        overview = {
            "requestId": sent.request_id,
            "timestamp": sent.at // 1000,
            "delivered": sent.delivered,
            "uniqueImpression": _private(found, len(sent.impressions)),
            "uniqueClick": _private(found, len(set().union(*sent.clicks.values())) if sent.clicks else 0),
            "uniqueMediaPlayed": None,
            "uniqueMediaPlayed100Percent": None,
        }
        return jsonify(
            {"overview": overview, "messages": _per_message([sent], found), "clicks": _clicks([sent], found)}
        )


def _per_message(sents: list[SentRequest], found: Channel) -> list[dict]:
    count = max((len(s.messages) for s in sents), default=0)
    seen = set().union(*(s.impressions for s in sents)) if sents else set()
    return [
        {
            "seq": seq,
            "impression": _private(found, sum(len(s.impressions) for s in sents if len(s.messages) >= seq)),
            "uniqueImpression": _private(found, len(seen)),
            "mediaPlayed": None,
            "mediaPlayed25Percent": None,
            "mediaPlayed50Percent": None,
            "mediaPlayed75Percent": None,
            "mediaPlayed100Percent": None,
            "uniqueMediaPlayed": None,
            "uniqueMediaPlayed25Percent": None,
            "uniqueMediaPlayed50Percent": None,
            "uniqueMediaPlayed75Percent": None,
            "uniqueMediaPlayed100Percent": None,
        }
        for seq in range(1, count + 1)
    ]


def _clicks(sents: list[SentRequest], found: Channel) -> list[dict]:
    urls: dict[str, set[str]] = {}
    for sent in sents:
        for url, users in sent.clicks.items():
            urls.setdefault(url, set()).update(users)
    clickers = set().union(*urls.values()) if urls else set()
    return [
        {
            "seq": 1,
            "url": url,
            "click": _private(found, len(users)),
            "uniqueClick": _private(found, len(users)),
            "uniqueClickOfRequest": _private(found, len(clickers)),
        }
        for url, users in urls.items()
    ]


@bp.get("/v2/bot/insight/message/event/aggregation", endpoint="getStatisticsPerUnit")
def per_unit():
    """Impressions and clicks of push/multicast requests tagged with a unit, over ≤30 days."""
    unit = request.args.get("customAggregationUnit", "")
    start, end = _date_arg("from"), _date_arg("to")
    days = (datetime.strptime(end, "%Y%m%d") - datetime.strptime(start, "%Y%m%d")).days
    if not 0 <= days <= 30:
        raise LineError(400, "The period must be at most 30 days", [{"property": "to", "message": "invalid"}])
    with state().lock:
        found = channel()
        sents = [s for s in found.sent_requests.values() if unit in s.units and start <= jst_date(s.at) <= end]
        impressions = set().union(*(s.impressions for s in sents)) if sents else set()
        clickers = set().union(*(u for s in sents for u in s.clicks.values())) if sents else set()
        overview = {
            "uniqueImpression": _private(found, len(impressions)),
            "uniqueClick": _private(found, len(clickers)),
            "uniqueMediaPlayed": None,
            "uniqueMediaPlayed100Percent": None,
        }
        messages = [_unit_message(m) for m in _per_message(sents, found)]
        return jsonify({"overview": overview, "messages": messages, "clicks": _clicks(sents, found)})


def _unit_message(message: dict) -> dict:
    return {k: v for k, v in message.items() if k != "uniqueImpression"} | {
        "uniqueImpression": message["uniqueImpression"]
    }


@bp.get("/v2/bot/message/aggregation/info", endpoint="getAggregationUnitUsage")
def unit_usage():
    """Units used this month."""
    month = jst_date(now_ms())[:6]
    with state().lock:
        units = {u for s in channel().sent_requests.values() if jst_date(s.at)[:6] == month for u in s.units}
    return jsonify({"numOfCustomAggregationUnits": len(units)})


@bp.get("/v2/bot/message/aggregation/list", endpoint="getAggregationUnitNameList")
def unit_names():
    """Unit names used this month."""
    with state().lock:
        names = sorted({u for s in channel().sent_requests.values() for u in s.units})
    return jsonify({"customAggregationUnits": names})


def _interaction(channel_id: str, user_id: str):
    body = request.get_json(silent=True) or {}
    found = state().channels.get(channel_id)
    sent = found.sent_requests.get(str(body.get("requestId"))) if found else None
    if sent is None or user_id not in found.patients:
        return None, body
    return sent, body


@control_bp.post("/channels/<channel_id>/patients/<user_id>/open")
def simulate_open(channel_id: str, user_id: str):
    """The patient saw the messages of a send request ``{requestId}``."""
    with state().lock:
        sent, _ = _interaction(channel_id, user_id)
        if sent is None:
            return jsonify({"error": "unknown channel, patient or requestId"}), 404
        sent.impressions.add(user_id)
        return jsonify({"uniqueImpression": len(sent.impressions)})


def _strings(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    return [text for item in items for text in _strings(item)]


def _shown(sent: SentRequest, url: str) -> bool:
    """LINE counts taps on URLs as they were sent (the product's short links), nothing else."""
    return bool(url) and any(url in text for text in _strings(sent.messages))


@control_bp.post("/channels/<channel_id>/patients/<user_id>/click")
def simulate_click(channel_id: str, user_id: str):
    """The patient tapped a URL ``{requestId, url}`` in a send request's messages: LINE's own count.

    The URL must be one the messages carry, exactly as sent (the product sends short links
    ``…/l/<code>``, so LINE's statistics name those, not the original). Following the link, i.e.
    the product's own click count, is the patient's browser: a GET of that URL.
    """
    with state().lock:
        sent, body = _interaction(channel_id, user_id)
        if sent is None:
            return jsonify({"error": "unknown channel, patient or requestId"}), 404
        if not _shown(sent, str(body.get("url", ""))):
            return jsonify({"error": "url is not in the messages of this request"}), 400
        sent.impressions.add(user_id)
        sent.clicks.setdefault(str(body.get("url", "")), set()).add(user_id)
        return jsonify({"clicks": {u: len(s) for u, s in sent.clicks.items()}})
