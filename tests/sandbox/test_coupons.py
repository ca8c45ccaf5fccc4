"""The sandbox's coupon API through the real SDK: create, list, get, close, and coupon messages.

Every answer is checked against LINE's contract by the ``api_client`` fixture.
"""

from __future__ import annotations

import time

import pytest
import requests
from linebot.v3.messaging import ApiException, CouponCreateRequest, PushMessageRequest

from saas.sandbox.contract import validate_request


def _coupon(**changes) -> dict:
    now = int(time.time())
    body = {
        "title": "美容皮膚科 初回10%オフ",
        "description": "自費のしみ取りレーザーが初回10%オフ",
        "usageCondition": "受付でこの画面をご提示ください",
        "startTimestamp": now - 60,
        "endTimestamp": now + 30 * 86400,
        "maxUseCountPerTicket": 1,
        "visibility": "UNLISTED",
        "timezone": "ASIA_TOKYO",
        "acquisitionCondition": {"type": "normal"},
        "reward": {"type": "discount", "priceInfo": {"type": "percentage", "percentage": 10}},
    }
    body.update(changes)
    return body


def _create(messaging, **changes) -> str:
    return messaging.create_coupon(CouponCreateRequest.from_dict(_coupon(**changes))).coupon_id


def test_a_created_coupon_is_listed_read_back_and_closed_once(messaging):
    coupon_id = _create(messaging)
    detail = messaging.get_coupon_detail(coupon_id)
    assert (detail.title, detail.status, detail.reward.price_info.percentage) == (
        "美容皮膚科 初回10%オフ",
        "RUNNING",
        10,
    )
    assert [item.coupon_id for item in messaging.list_coupon(status=["RUNNING"]).items] == [coupon_id]
    messaging.close_coupon(coupon_id)
    assert messaging.get_coupon_detail(coupon_id).status == "CLOSED"
    assert messaging.list_coupon(status=["RUNNING"]).items == []
    with pytest.raises(ApiException) as again:
        messaging.close_coupon(coupon_id)
    assert again.value.status == 410


def test_the_coupon_list_is_paged(messaging):
    ids = [_create(messaging, title=f"クーポン{i}") for i in range(3)]
    first = messaging.list_coupon(limit=2)
    second = messaging.list_coupon(limit=2, start=first.next)
    assert [i.coupon_id for i in first.items + second.items] == ids and second.next is None


def test_a_coupon_ending_before_it_starts_is_refused_with_details(messaging, sandbox, channel):
    body = _coupon(endTimestamp=1, startTimestamp=100, title="x" * 61)
    answer = requests.post(
        f"{sandbox.url}/v2/bot/coupon", json=body, headers={"Authorization": f"Bearer {channel['token']}"}, timeout=10
    )
    assert answer.status_code == 400
    assert {d["property"] for d in answer.json()["details"]} == {"title", "endTimestamp"}


def test_an_unknown_coupon_is_404(messaging):
    with pytest.raises(ApiException) as missing:
        messaging.get_coupon_detail("01JUNKNOWNCOUPON0000000000")
    assert missing.value.status == 404


def test_a_coupon_message_reaches_the_patient_and_a_closed_one_is_refused(messaging, sandbox, channel, friend):
    coupon_id = _create(messaging)
    push = PushMessageRequest.from_dict({"to": friend, "messages": [{"type": "coupon", "couponId": coupon_id}]})
    messaging.push_message(push)
    shown = sandbox.chat(channel["id"], friend)[-1]
    assert shown["message"]["couponId"] == coupon_id and shown["coupon"]["title"] == "美容皮膚科 初回10%オフ"
    messaging.close_coupon(coupon_id)
    with pytest.raises(ApiException) as refused:
        messaging.push_message(push)
    assert refused.value.status == 400 and "couponId" in refused.value.body


def test_the_create_request_matches_lines_request_model():
    assert validate_request("POST", "/v2/bot/coupon", _coupon()) == "create_coupon"
