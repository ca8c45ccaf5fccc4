"""The real line-bot-sdk v3 against the sandbox: sending, profiles, quota, errors."""

from __future__ import annotations

import json
import uuid

import pytest
from linebot.v3.messaging import ApiClient as MessagingClient
from linebot.v3.messaging import (
    ApiException,
    BroadcastRequest,
    ButtonsTemplate,
    Configuration,
    MessagingApi,
    MulticastRequest,
    NarrowcastRequest,
    PostbackAction,
    PushMessageRequest,
    ReplyMessageRequest,
    StickerMessage,
    TemplateMessage,
    TextMessage,
)


def _error(excinfo) -> tuple[int, dict, dict]:
    error = excinfo.value
    return error.status, json.loads(error.body), dict(error.headers)


def test_push_lands_in_the_patients_inbox_and_counts_against_the_quota(sandbox, channel, messaging, friend):
    answer = messaging.push_message(
        PushMessageRequest(to=friend, messages=[TextMessage(text="明日の予約をお忘れなく")])
    )
    inbox = sandbox.inbox(channel["id"], friend)
    assert [m["message"]["text"] for m in inbox] == ["明日の予約をお忘れなく"]
    assert inbox[0]["id"] == answer.sent_messages[0].id and inbox[0]["via"] == "push"
    assert messaging.get_message_quota_consumption().total_usage == 1
    quota = messaging.get_message_quota()
    assert (quota.type.value, quota.value) == ("limited", 200)


def test_reply_token_works_once_and_is_free(sandbox, channel, messaging, friend):
    token = sandbox.send_text(channel["id"], friend, "予約したいです")["event"]["replyToken"]
    messaging.reply_message(ReplyMessageRequest(reply_token=token, messages=[TextMessage(text="承知しました")]))
    with pytest.raises(ApiException) as excinfo:
        messaging.reply_message(ReplyMessageRequest(reply_token=token, messages=[TextMessage(text="二回目")]))
    status, body, headers = _error(excinfo)
    assert status == 400 and body["message"] == "Invalid reply token" and headers["x-line-request-id"]
    assert [m["message"]["text"] for m in sandbox.inbox(channel["id"], friend)] == ["承知しました"]
    assert messaging.get_message_quota_consumption().total_usage == 0


def test_reply_token_expires(sandbox, channel, messaging, friend):
    sandbox.configure(channel["id"], reply_token_ttl_s=0)
    token = sandbox.send_text(channel["id"], friend, "こんにちは")["event"]["replyToken"]
    with pytest.raises(ApiException) as excinfo:
        messaging.reply_message(ReplyMessageRequest(reply_token=token, messages=[TextMessage(text="遅い返信")]))
    assert excinfo.value.status == 400


def test_multicast_broadcast_and_narrowcast_skip_blocked_patients(sandbox, channel, messaging, friend):
    blocker = sandbox.add_patient(channel["id"], "佐藤")
    sandbox.follow(channel["id"], blocker)
    sandbox.unfollow(channel["id"], blocker)
    messaging.multicast(MulticastRequest(to=[friend, blocker], messages=[TextMessage(text="休診のお知らせ")]))
    messaging.broadcast(BroadcastRequest(messages=[StickerMessage(package_id="446", sticker_id="1988")]))
    response = messaging.narrowcast_with_http_info(NarrowcastRequest(messages=[TextMessage(text="健診のご案内")]))
    assert response.status_code == 202
    progress = messaging.get_narrowcast_progress(response.headers["x-line-request-id"])
    assert (progress.phase, progress.success_count, progress.target_count) == ("succeeded", 1, 1)
    assert [m["via"] for m in sandbox.inbox(channel["id"], friend)] == ["multicast", "broadcast", "narrowcast"]
    assert sandbox.inbox(channel["id"], blocker) == []
    assert messaging.get_message_quota_consumption().total_usage == 3


def test_template_messages_are_delivered_as_sent(sandbox, channel, messaging, friend):
    template = ButtonsTemplate(
        text="ご予約の日時を選んでください", actions=[PostbackAction(label="午前", data="slot=am")]
    )
    messaging.push_message(
        PushMessageRequest(to=friend, messages=[TemplateMessage(alt_text="予約", template=template)])
    )
    sent = sandbox.inbox(channel["id"], friend)[0]["message"]
    assert sent["template"]["actions"][0] == {"type": "postback", "label": "午前", "data": "slot=am"}


def test_retry_key_accepts_a_request_once(sandbox, channel, messaging, friend):
    key = str(uuid.uuid4())
    first = messaging.push_message_with_http_info(
        PushMessageRequest(to=friend, messages=[TextMessage(text="一度だけ")]), x_line_retry_key=key
    )
    with pytest.raises(ApiException) as excinfo:
        messaging.push_message(
            PushMessageRequest(to=friend, messages=[TextMessage(text="一度だけ")]), x_line_retry_key=key
        )
    status, body, headers = _error(excinfo)
    assert status == 409 and body["message"] == "The retry key is already accepted"
    assert headers["x-line-accepted-request-id"] == first.headers["x-line-request-id"]
    assert body["sentMessages"][0]["id"] == first.data.sent_messages[0].id
    assert len(sandbox.inbox(channel["id"], friend)) == 1
    with pytest.raises(ApiException) as excinfo:
        messaging.broadcast(BroadcastRequest(messages=[TextMessage(text="x")]), x_line_retry_key=key + "0")
    assert excinfo.value.status == 400


def test_retry_key_is_rejected_on_reply(sandbox, channel, messaging, friend):
    token = sandbox.send_text(channel["id"], friend, "はい")["event"]["replyToken"]
    body = ReplyMessageRequest(reply_token=token, messages=[TextMessage(text="x")])
    with pytest.raises(ApiException) as excinfo:
        messaging.reply_message(body, _headers={"X-Line-Retry-Key": str(uuid.uuid4())})
    assert excinfo.value.status == 400


def test_a_failed_request_can_be_retried_with_the_same_key(sandbox, channel, messaging, friend):
    sandbox.configure(channel["id"], fail_next=[500])
    key = str(uuid.uuid4())
    request = PushMessageRequest(to=friend, messages=[TextMessage(text="再送")])
    with pytest.raises(ApiException) as excinfo:
        messaging.push_message(request, x_line_retry_key=key)
    assert excinfo.value.status == 500
    messaging.push_message(request, x_line_retry_key=key)
    assert len(sandbox.inbox(channel["id"], friend)) == 1


def test_text_length_counts_utf16_code_units_as_line_does(sandbox, channel, messaging, friend):
    messaging.push_message(PushMessageRequest(to=friend, messages=[TextMessage(text="😷" * 2500)]))
    with pytest.raises(ApiException) as excinfo:
        messaging.push_message(PushMessageRequest(to=friend, messages=[TextMessage(text="😷" * 2600)]))
    assert _error(excinfo)[1]["details"] == [
        {"message": "Length must be between 0 and 5000", "property": "messages[0].text"}
    ]
    assert len(sandbox.inbox(channel["id"], friend)) == 1


def test_validation_errors_are_shaped_like_lines(sandbox, channel, messaging, friend):
    with pytest.raises(ApiException) as excinfo:
        messaging.push_message(PushMessageRequest(to=friend, messages=[TextMessage(text="あ" * 5001)]))
    status, body, _ = _error(excinfo)
    assert status == 400 and body["details"] == [
        {"message": "Length must be between 0 and 5000", "property": "messages[0].text"}
    ]
    with pytest.raises(ApiException) as excinfo:
        # The SDK checks these limits itself; construct() skips that to reach the platform.
        messaging.push_message(
            PushMessageRequest.construct(to=friend, messages=[TextMessage(text=str(i)) for i in range(6)])
        )
    assert _error(excinfo)[1]["details"][0]["property"] == "messages"
    with pytest.raises(ApiException) as excinfo:
        messaging.multicast(MulticastRequest.construct(to=[friend] * 501, messages=[TextMessage(text="多すぎ")]))
    assert _error(excinfo)[1]["details"][0]["property"] == "to"
    assert sandbox.inbox(channel["id"], friend) == []


def test_unknown_token_is_refused(sandbox, channel):
    with (
        MessagingClient(Configuration(host=sandbox.url, access_token="wrong")) as client,
        pytest.raises(ApiException) as excinfo,
    ):
        MessagingApi(client).get_bot_info()
    status, body, headers = _error(excinfo)
    assert status == 401 and body["message"].startswith("Authentication failed") and headers["x-line-request-id"]


def test_rate_limit_answers_429(sandbox, channel, messaging, friend):
    sandbox.configure(channel["id"], rate_limits={"getProfile": [2, 60]})
    messaging.get_profile(friend)
    messaging.get_profile(friend)
    with pytest.raises(ApiException) as excinfo:
        messaging.get_profile(friend)
    status, body, _ = _error(excinfo)
    assert status == 429 and body["message"] == "The API rate limit has been exceeded. Try again later."
    messaging.get_bot_info()


def test_monthly_limit_stops_counted_sends_but_not_replies(sandbox, channel, messaging, friend):
    sandbox.configure(channel["id"], monthly_limit=1)
    messaging.push_message(PushMessageRequest(to=friend, messages=[TextMessage(text="1通目")]))
    with pytest.raises(ApiException) as excinfo:
        messaging.push_message(PushMessageRequest(to=friend, messages=[TextMessage(text="2通目")]))
    status, body, _ = _error(excinfo)
    assert status == 429 and body["message"] == "You have reached your monthly limit."
    token = sandbox.send_text(channel["id"], friend, "質問です")["event"]["replyToken"]
    messaging.reply_message(ReplyMessageRequest(reply_token=token, messages=[TextMessage(text="返信は無料")]))
    assert len(sandbox.inbox(channel["id"], friend)) == 2


def test_standard_plan_has_no_quota_cap(sandbox, channel, messaging):
    sandbox.configure(channel["id"], plan="standard")
    assert messaging.get_message_quota().type.value == "none"


def test_fail_next_injects_429_then_recovers(sandbox, channel, messaging):
    sandbox.configure(channel["id"], fail_next=[429])
    with pytest.raises(ApiException) as excinfo:
        messaging.get_bot_info()
    assert excinfo.value.status == 429
    assert messaging.get_bot_info().display_name == "さくら内科"


def test_profile_bot_info_and_followers(sandbox, channel, messaging, friend):
    profile = messaging.get_profile(friend)
    assert (profile.display_name, profile.language) == ("山田 花子", "ja")
    stranger = sandbox.add_patient(channel["id"], "未登録")
    with pytest.raises(ApiException) as excinfo:
        messaging.get_profile(stranger)
    assert excinfo.value.status == 404
    info = messaging.get_bot_info()
    assert info.user_id == channel["botUserId"]
    others = [sandbox.add_patient(channel["id"], f"患者{i}") for i in range(3)]
    for user_id in others:
        sandbox.follow(channel["id"], user_id)
    page = messaging.get_followers(limit=2)
    rest = messaging.get_followers(start=page.next, limit=2)
    assert page.user_ids + rest.user_ids == [friend, *others] and rest.next is None


def test_sent_message_counts_per_day(sandbox, channel, messaging, friend):
    from saas.sandbox.state import jst_date, now_ms

    messaging.push_message(PushMessageRequest(to=friend, messages=[TextMessage(text="a")]))
    today = jst_date(now_ms())
    counted = messaging.get_number_of_sent_push_messages(today)
    assert (counted.status, counted.success) == ("ready", 1)
    assert messaging.get_number_of_sent_reply_messages(today).success == 0
