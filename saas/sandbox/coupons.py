"""Coupons (``/v2/bot/coupon``): create, list, get, close, as LINE answers them.

A coupon is stored per channel. ``coupon`` messages (see validation.py) may only name a
coupon of the sending channel that is not closed, as on LINE.
"""

from __future__ import annotations

import base64
import copy
import time

from flask import jsonify, request

from .api import LineError, bp, channel, json_body, state
from .state import Channel, ulid
from .validation import Problems

VISIBILITIES = {"UNLISTED", "PUBLIC"}
STATUSES = {"DRAFT", "RUNNING", "CLOSED"}
REWARD_TYPES = {"cashBack", "discount", "free", "gift", "others"}
PRICE_TYPES = {"cashBack": {"fixed", "percentage"}, "discount": {"fixed", "percentage", "explicit"}}
# The zones LINE accepts (CouponCreateRequest.timezone); the sandbox only needs them to be named.
TIMEZONES = {
    "ETC_GMT_MINUS_12", "ETC_GMT_MINUS_11", "PACIFIC_HONOLULU", "AMERICA_ANCHORAGE", "AMERICA_LOS_ANGELES",
    "AMERICA_PHOENIX", "AMERICA_CHICAGO", "AMERICA_NEW_YORK", "AMERICA_CARACAS", "AMERICA_SANTIAGO",
    "AMERICA_ST_JOHNS", "AMERICA_SAO_PAULO", "ETC_GMT_MINUS_2", "ATLANTIC_CAPE_VERDE", "EUROPE_LONDON",
    "EUROPE_PARIS", "EUROPE_ISTANBUL", "EUROPE_MOSCOW", "ASIA_TEHRAN", "ASIA_TBILISI", "ASIA_KABUL",
    "ASIA_TASHKENT", "ASIA_COLOMBO", "ASIA_KATHMANDU", "ASIA_ALMATY", "ASIA_RANGOON", "ASIA_BANGKOK",
    "ASIA_TAIPEI", "ASIA_TOKYO", "AUSTRALIA_DARWIN", "AUSTRALIA_SYDNEY", "ASIA_VLADIVOSTOK", "ETC_GMT_PLUS_12",
    "PACIFIC_TONGATAPU",
}  # fmt: skip


def _check_integer(body: dict, key: str, problems: Problems, *, low: int | None = None, high: int | None = None):
    value = body.get(key)
    if not isinstance(value, int) or isinstance(value, bool):
        problems.add(key, "must be specified" if value is None else "must be an integer")
        return None
    if (low is not None and value < low) or (high is not None and value > high):
        problems.add(key, f"must be between {low} and {high}")
    return value


def _check_acquisition(body: dict, problems: Problems) -> None:
    condition = body.get("acquisitionCondition")
    kind = condition.get("type") if isinstance(condition, dict) else None
    if kind not in {"normal", "lottery"}:
        problems.add("acquisitionCondition.type", "must be normal or lottery")
    elif kind == "lottery":
        _check_integer(condition, "lotteryProbability", problems, low=1, high=99)
        _check_integer(condition, "maxAcquireCount", problems, low=-1, high=999999)


def _check_reward(body: dict, problems: Problems) -> None:
    reward = body.get("reward")
    if reward is None:
        return
    kind = reward.get("type") if isinstance(reward, dict) else None
    if kind not in REWARD_TYPES:
        problems.add("reward.type", "Invalid reward type")
        return
    price = reward.get("priceInfo")
    if price is None or kind not in PRICE_TYPES:
        return
    if not isinstance(price, dict) or price.get("type") not in PRICE_TYPES[kind]:
        problems.add("reward.priceInfo.type", "Invalid price type")
    elif price["type"] == "percentage":
        _check_integer(price, "percentage", problems, low=1, high=99)


def check_create(body: dict) -> None:
    """LINE's checks of a CouponCreateRequest, every problem in one 400."""
    problems = Problems()
    problems.string(body, "title", "", 60)
    problems.string(body, "description", "", 1000, required=False)
    problems.string(body, "usageCondition", "", 100, required=False)
    start = _check_integer(body, "startTimestamp", problems, low=0)
    end = _check_integer(body, "endTimestamp", problems, low=0)
    if start is not None and end is not None and end <= start:
        problems.add("endTimestamp", "must be after startTimestamp")
    use = _check_integer(body, "maxUseCountPerTicket", problems, high=1)
    if use is not None and use not in (-1, 1):
        problems.add("maxUseCountPerTicket", "must be 1 or -1")
    if body.get("visibility") not in VISIBILITIES:
        problems.add("visibility", "must be UNLISTED or PUBLIC")
    if body.get("timezone") not in TIMEZONES:
        problems.add("timezone", "Invalid timezone")
    _check_acquisition(body, problems)
    _check_reward(body, problems)
    problems.raise_if_any()


def _stored(body: dict) -> dict:
    """The CouponResponse LINE answers for a created coupon (currency added to priced rewards)."""
    coupon = {key: copy.deepcopy(body[key]) for key in body if key != "acquisitionCondition"}
    coupon["acquisitionCondition"] = {"type": body["acquisitionCondition"]["type"]}
    if body["acquisitionCondition"]["type"] == "lottery":
        coupon["acquisitionCondition"].update(
            {k: body["acquisitionCondition"][k] for k in ("lotteryProbability", "maxAcquireCount")}
        )
    price = (coupon.get("reward") or {}).get("priceInfo")
    if isinstance(price, dict) and price.get("type") in {"fixed", "explicit"}:
        price["currency"] = "JPY"
    coupon.update(
        couponId=ulid(),
        createdTimestamp=int(time.time()),
        status="RUNNING",
        maxTicketPerUser=1,
        maxAcquireCount=body["acquisitionCondition"].get("maxAcquireCount", -1),
    )
    return coupon


def sendable(found: Channel, coupon_id) -> bool:
    """A ``coupon`` message may name only a running coupon of the sending channel."""
    coupon = found.coupons.get(coupon_id) if isinstance(coupon_id, str) else None
    return coupon is not None and coupon["status"] != "CLOSED" and coupon["endTimestamp"] > time.time()


@bp.post("/v2/bot/coupon", endpoint="createCoupon")
def create_coupon():
    """Create a coupon; answers its couponId."""
    body = json_body()
    check_create(body)
    coupon = _stored(body)
    with state().lock:
        channel().coupons[coupon["couponId"]] = coupon
    return jsonify({"couponId": coupon["couponId"]})


def _page_token(index: int) -> str:
    return base64.urlsafe_b64encode(str(index).encode()).decode().rstrip("=")


def _page_start(token: str | None) -> int:
    if not token:
        return 0
    try:
        return int(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    except ValueError as exc:
        raise LineError(400, "The value for the 'start' parameter is invalid") from exc


@bp.get("/v2/bot/coupon", endpoint="listCoupon")
def list_coupons():
    """Coupons page by page (``limit`` 1..100, default 20), optionally of some statuses."""
    wanted = set(request.args.getlist("status"))
    if wanted - STATUSES:
        raise LineError(400, "The value for the 'status' parameter is invalid")
    limit = request.args.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= 100:
        raise LineError(400, "The value for the 'limit' parameter is invalid")
    first = _page_start(request.args.get("start"))
    with state().lock:
        found = [c for c in channel().coupons.values() if not wanted or c["status"] in wanted]
    page = found[first : first + int(limit)]
    answer = {"items": [{"couponId": c["couponId"], "title": c["title"]} for c in page]}
    if first + int(limit) < len(found):
        answer["next"] = _page_token(first + int(limit))
    return jsonify(answer)


def _coupon(coupon_id: str) -> dict:
    coupon = channel().coupons.get(coupon_id)
    if coupon is None:
        raise LineError(404, "Not found")
    return coupon


@bp.get("/v2/bot/coupon/<coupon_id>", endpoint="getCouponDetail")
def get_coupon(coupon_id: str):
    """One coupon with its status."""
    with state().lock:
        return jsonify(copy.deepcopy(_coupon(coupon_id)))


@bp.put("/v2/bot/coupon/<coupon_id>/close", endpoint="closeCoupon")
def close_coupon(coupon_id: str):
    """Close (discontinue) a coupon; closing it again is 410 Gone."""
    with state().lock:
        coupon = _coupon(coupon_id)
        if coupon["status"] == "CLOSED":
            raise LineError(410, "The coupon is already closed")
        coupon["status"] = "CLOSED"
    return jsonify({})
