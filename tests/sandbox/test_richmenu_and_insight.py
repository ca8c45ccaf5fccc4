"""Rich menus (messaging + data host) and statistics through the real SDK."""

from __future__ import annotations

import io
import json

import pytest
from linebot.v3.insight import ApiClient as InsightClient
from linebot.v3.insight import Configuration as InsightConfiguration
from linebot.v3.insight import Insight
from linebot.v3.messaging import (
    ApiException,
    BroadcastRequest,
    CreateRichMenuAliasRequest,
    MessagingApiBlob,
    PostbackAction,
    PushMessageRequest,
    RichMenuArea,
    RichMenuBounds,
    RichMenuBulkLinkRequest,
    RichMenuRequest,
    RichMenuSize,
    TextMessage,
    UpdateRichMenuAliasRequest,
)
from PIL import Image

from saas.sandbox.contract import validate_response
from saas.sandbox.state import jst_date, now_ms


def _menu(width=2500, height=843) -> RichMenuRequest:
    area = RichMenuArea(
        bounds=RichMenuBounds(x=0, y=0, width=1250, height=843),
        action=PostbackAction(label="予約", data="menu=reserve"),
    )
    return RichMenuRequest(
        size=RichMenuSize(width=width, height=height),
        selected=True,
        name="基本",
        chat_bar_text="メニュー",
        areas=[area],
    )


def _png(width=2500, height=843) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "#06c755").save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def blob(api_client):
    return MessagingApiBlob(api_client)


@pytest.fixture
def insight(sandbox, channel):
    with InsightClient(InsightConfiguration(host=sandbox.url, access_token=channel["token"])) as client:
        yield Insight(client)


def test_rich_menu_lifecycle(sandbox, channel, messaging, blob, friend):
    messaging.validate_rich_menu_object(_menu())
    menu_id = messaging.create_rich_menu(_menu()).rich_menu_id
    with pytest.raises(ApiException) as excinfo:
        messaging.link_rich_menu_id_to_user(friend, menu_id)
    assert "upload richmenu image" in json.loads(excinfo.value.body)["message"]
    image = _png()
    blob.set_rich_menu_image(menu_id, image, _headers={"Content-Type": "image/png"})
    assert bytes(blob.get_rich_menu_image(menu_id)) == image
    messaging.set_default_rich_menu(menu_id)
    assert messaging.get_default_rich_menu_id().rich_menu_id == menu_id
    messaging.link_rich_menu_id_to_user(friend, menu_id)
    assert messaging.get_rich_menu_id_of_user(friend).rich_menu_id == menu_id
    messaging.unlink_rich_menu_id_from_user(friend)
    messaging.link_rich_menu_id_to_users(RichMenuBulkLinkRequest(rich_menu_id=menu_id, user_ids=[friend]))
    assert sandbox.patients(channel["id"])[0]["richMenuId"] == menu_id
    assert [m.rich_menu_id for m in messaging.get_rich_menu_list().richmenus] == [menu_id]
    assert messaging.get_rich_menu(menu_id).chat_bar_text == "メニュー"
    messaging.delete_rich_menu(menu_id)
    with pytest.raises(ApiException) as excinfo:
        messaging.get_rich_menu(menu_id)
    assert excinfo.value.status == 404
    with pytest.raises(ApiException):
        messaging.get_default_rich_menu_id()


def test_rich_menu_checks(messaging, blob):
    with pytest.raises(ApiException) as excinfo:
        messaging.create_rich_menu(_menu(width=2500, height=2000))
    assert json.loads(excinfo.value.body)["details"][0]["property"] == "size"
    menu_id = messaging.create_rich_menu(_menu()).rich_menu_id
    with pytest.raises(ApiException) as excinfo:
        blob.set_rich_menu_image(menu_id, _png(1200, 405), _headers={"Content-Type": "image/png"})
    assert excinfo.value.status == 400
    with pytest.raises(ApiException) as excinfo:
        blob.set_rich_menu_image(menu_id, b"GIF89a", _headers={"Content-Type": "image/gif"})
    assert excinfo.value.status == 415


def test_rich_menu_aliases(messaging, blob):
    ids = []
    for _ in range(2):
        ids.append(messaging.create_rich_menu(_menu()).rich_menu_id)
        blob.set_rich_menu_image(ids[-1], _png(), _headers={"Content-Type": "image/png"})
    messaging.create_rich_menu_alias(CreateRichMenuAliasRequest(rich_menu_alias_id="page-a", rich_menu_id=ids[0]))
    with pytest.raises(ApiException) as excinfo:
        messaging.create_rich_menu_alias(CreateRichMenuAliasRequest(rich_menu_alias_id="page-a", rich_menu_id=ids[1]))
    assert excinfo.value.status == 400
    messaging.update_rich_menu_alias("page-a", UpdateRichMenuAliasRequest(rich_menu_id=ids[1]))
    assert messaging.get_rich_menu_alias("page-a").rich_menu_id == ids[1]
    assert [a.rich_menu_alias_id for a in messaging.get_rich_menu_alias_list().aliases] == ["page-a"]
    messaging.delete_rich_menu_alias("page-a")
    with pytest.raises(ApiException) as excinfo:
        messaging.get_rich_menu_alias("page-a")
    assert excinfo.value.status == 404


def test_statistics_follow_what_patients_did(sandbox, channel, messaging, insight, friend):
    other = sandbox.add_patient(channel["id"], "田中")
    sandbox.follow(channel["id"], other)
    sandbox.unfollow(channel["id"], other)
    today = jst_date(now_ms())
    followers = insight.get_number_of_followers(var_date=today)
    assert (followers.followers, followers.targeted_reaches, followers.blocks) == (2, 1, 1)
    sent = messaging.broadcast_with_http_info(BroadcastRequest(messages=[TextMessage(text="https://example.com/flu")]))
    request_id = sent.headers["x-line-request-id"]
    sandbox.open_message(channel["id"], friend, request_id)
    sandbox.click(channel["id"], friend, request_id, "https://example.com/flu")
    event = insight.get_message_event(request_id)
    assert (event.overview.delivered, event.overview.unique_impression, event.overview.unique_click) == (1, 1, 1)
    assert insight.get_number_of_message_deliveries(today).api_broadcast == 1
    push = PushMessageRequest(to=friend, messages=[TextMessage(text="予約確認")], custom_aggregation_units=["reminder"])
    pushed = messaging.push_message_with_http_info(push)
    sandbox.open_message(channel["id"], friend, pushed.headers["x-line-request-id"])
    per_unit = insight.get_statistics_per_unit("reminder", today, today)
    assert per_unit.overview.unique_impression == 1
    assert messaging.get_aggregation_unit_usage().num_of_custom_aggregation_units == 1
    assert messaging.get_aggregation_unit_name_list().custom_aggregation_units == ["reminder"]
    for entry in sandbox.requests(channel["id"]):
        validate_response(entry["method"], entry["path"], entry["status"], entry["response"])


def test_privacy_threshold_hides_small_counts(sandbox, channel, messaging, insight, friend):
    sandbox.configure(channel["id"], privacy_threshold=20)
    sent = messaging.broadcast_with_http_info(BroadcastRequest(messages=[TextMessage(text="お知らせ")]))
    sandbox.open_message(channel["id"], friend, sent.headers["x-line-request-id"])
    assert insight.get_message_event(sent.headers["x-line-request-id"]).overview.unique_impression is None
