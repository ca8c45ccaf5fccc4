"""Virtual patients' webhooks: signed, shaped per webhook.yml, batched and redelivered."""

from __future__ import annotations

import base64
import hashlib
import hmac

from linebot.v3.messaging import SetWebhookEndpointRequest
from linebot.v3.messaging import TestWebhookEndpointRequest as WebhookTestRequest
from linebot.v3.webhook import WebhookParser

from saas.sandbox.contract import validate_webhook


def _verify(received: dict, secret: str) -> None:
    expected = base64.b64encode(hmac.new(secret.encode(), received["raw"], hashlib.sha256).digest()).decode()
    assert received["headers"]["X-Line-Signature"] == expected
    validate_webhook(received["body"])


def test_patient_actions_arrive_as_signed_line_events(sandbox, channel, receiver):
    user_id = sandbox.add_patient(channel["id"], "鈴木")
    results = [
        sandbox.follow(channel["id"], user_id),
        sandbox.send_text(channel["id"], user_id, "熱があります"),
        sandbox.postback(channel["id"], user_id, "action=reserve", {"date": "2026-12-01"}),
        sandbox.unfollow(channel["id"], user_id),
        sandbox.follow(channel["id"], user_id),
    ]
    assert [r["status"] for r in results] == [200] * 5
    for received in receiver.received:
        _verify(received, channel["secret"])
        assert received["body"]["destination"] == channel["botUserId"]
    events = [r["body"]["events"][0] for r in receiver.received]
    assert [e["type"] for e in events] == ["follow", "message", "postback", "unfollow", "follow"]
    assert events[0]["follow"] == {"isUnblocked": False} and events[4]["follow"] == {"isUnblocked": True}
    assert events[1]["message"]["text"] == "熱があります" and events[1]["replyToken"]
    assert all(len(e["webhookEventId"]) == 26 and e["deliveryContext"] == {"isRedelivery": False} for e in events)


def test_official_sdk_parser_accepts_the_webhooks(sandbox, channel, receiver, friend):
    sandbox.send_text(channel["id"], friend, "こんにちは")
    parser = WebhookParser(channel["secret"])
    received = receiver.received[-1]
    events = parser.parse(received["raw"].decode(), received["headers"]["X-Line-Signature"])
    assert events[0].message.text == "こんにちは"


def test_several_events_in_one_request_and_redelivery(sandbox, channel, receiver, friend):
    first = sandbox.send_text(channel["id"], friend, "一つ目", deliver=False)["event"]
    second = sandbox.send_text(channel["id"], friend, "二つ目", deliver=False)["event"]
    before = len(receiver.received)
    assert sandbox.deliver(channel["id"], [first, second])["status"] == 200
    assert len(receiver.received) == before + 1
    assert [e["message"]["text"] for e in receiver.received[-1]["body"]["events"]] == ["一つ目", "二つ目"]
    again = sandbox.redeliver(channel["id"], first["webhookEventId"])
    body = receiver.received[-1]["body"]
    _verify(receiver.received[-1], channel["secret"])
    assert again["status"] == 200 and body["events"][0]["webhookEventId"] == first["webhookEventId"]
    assert body["events"][0]["deliveryContext"] == {"isRedelivery": True}


def test_product_answers_are_recorded(sandbox, channel, receiver, friend):
    receiver.answer_status = 500
    assert sandbox.send_text(channel["id"], friend, "届かない")["status"] == 500
    assert sandbox.webhook_deliveries(channel["id"])[-1]["status"] == 500


def test_webhook_endpoint_set_get_and_test(sandbox, channel, receiver, messaging):
    messaging.set_webhook_endpoint(SetWebhookEndpointRequest(endpoint=receiver.url + "?v=2"))
    current = messaging.get_webhook_endpoint()
    assert (current.endpoint, current.active) == (receiver.url + "?v=2", True)
    result = messaging.test_webhook_endpoint(WebhookTestRequest())
    assert (result.success, result.status_code) == (True, 200)
    assert receiver.received[-1]["body"]["events"] == []
    _verify(receiver.received[-1], channel["secret"])
    receiver.answer_status = 401
    result = messaging.test_webhook_endpoint(WebhookTestRequest(endpoint=receiver.url))
    assert (result.success, result.status_code) == (False, 401)
    dead = messaging.test_webhook_endpoint(WebhookTestRequest(endpoint="http://127.0.0.1:9/none"))
    assert (dead.success, dead.status_code, dead.reason) == (False, 0, "COULD_NOT_CONNECT")


def test_media_and_unsend_arrive_shaped_per_webhook_yml_and_the_content_api_serves_the_bytes(
    sandbox, channel, receiver, friend, api_client
):
    import pytest
    from linebot.v3.messaging import ApiException, MessagingApiBlob

    data = b"%PDF-1.4 sandbox"
    photo = sandbox.send_media(channel["id"], friend, "image")["event"]
    document = sandbox.send_media(
        channel["id"], friend, "file", data_base64=base64.b64encode(data).decode(), file_name="紹介状.pdf"
    )["event"]
    sandbox.unsend(channel["id"], friend, document["message"]["id"])
    for received in receiver.received[-3:]:
        _verify(received, channel["secret"])
    events = [r["body"]["events"][0] for r in receiver.received[-3:]]
    assert [e["type"] for e in events] == ["message", "message", "unsend"]
    assert events[0]["message"]["contentProvider"] == {"type": "line"}
    assert events[1]["message"]["fileName"] == "紹介状.pdf" and events[1]["message"]["fileSize"] == len(data)
    assert events[2]["unsend"] == {"messageId": document["message"]["id"]}

    blob = MessagingApiBlob(api_client)
    assert bytes(blob.get_message_content(photo["message"]["id"]))[:4] == b"\x89PNG"
    with pytest.raises(ApiException) as unsent:
        blob.get_message_content(document["message"]["id"])
    assert unsent.value.status == 404


def test_the_followers_api_pages_friends_and_refuses_unverified_accounts(sandbox, channel, messaging, friend):
    from linebot.v3.messaging import ApiException

    others = [sandbox.add_patient(channel["id"], f"患者{i}") for i in range(3)]
    for user_id in others:
        sandbox.follow(channel["id"], user_id)
    first = messaging.get_followers(limit=2)
    second = messaging.get_followers(start=first.next, limit=2)
    assert first.user_ids + second.user_ids == [friend, *others] and second.next is None
    sandbox.configure(channel["id"], followers_api=False)
    try:
        messaging.get_followers()
    except ApiException as refused:
        assert refused.status == 403
    else:
        raise AssertionError("an unverified account must get 403")
