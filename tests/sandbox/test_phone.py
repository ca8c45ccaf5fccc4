"""The phone simulator page in headless Chromium: chat, bot messages, rich menu taps."""

from __future__ import annotations

import pytest
from linebot.v3.messaging import (
    ButtonsTemplate,
    MessageAction,
    MessagingApiBlob,
    PostbackAction,
    PushMessageRequest,
    QuickReply,
    QuickReplyItem,
    TemplateMessage,
    TextMessage,
)

from .test_richmenu_and_insight import _menu, _png

pytestmark = pytest.mark.browser


def _events(receiver) -> list[dict]:
    return [e for r in receiver.received for e in r["body"]["events"]]


def test_patient_chats_and_taps_the_rich_menu_on_the_phone(
    browser, sandbox, channel, messaging, api_client, receiver, friend
):
    menu_id = messaging.create_rich_menu(_menu()).rich_menu_id
    MessagingApiBlob(api_client).set_rich_menu_image(menu_id, _png(), _headers={"Content-Type": "image/png"})
    messaging.set_default_rich_menu(menu_id)
    quick = QuickReply(items=[QuickReplyItem(action=MessageAction(label="はい", text="はい"))])
    buttons = ButtonsTemplate(
        title="ご予約", text="日時を選んでください", actions=[PostbackAction(label="午前", data="slot=am")]
    )
    messaging.push_message(
        PushMessageRequest(
            to=friend,
            messages=[
                TextMessage(text="ようこそ さくら内科へ\nご予約は https://clinic.example/book から"),
                TemplateMessage(alt_text="予約", template=buttons, quick_reply=quick),
            ],
        )
    )
    page = browser.new_page()
    page.goto(sandbox.url + "/_sandbox/phone")
    page.get_by_text("ようこそ さくら内科へ").wait_for()
    link = page.get_by_role("link", name="https://clinic.example/book")  # tappable, as in LINE
    assert link.get_attribute("href") == "https://clinic.example/book"
    page.get_by_role("button", name="午前").click()
    page.locator("#menu .area").first.click()
    page.locator("#chips button", has_text="はい").click()
    page.fill("#text", "発熱があります")
    page.press("#text", "Enter")
    page.get_by_text("発熱があります").wait_for()
    page.wait_for_function("document.querySelectorAll('#chat .row.me').length >= 4")
    page.close()
    events = _events(receiver)
    assert sorted(e["postback"]["data"] for e in events if e["type"] == "postback") == ["menu=reserve", "slot=am"]
    assert sorted(e["message"]["text"] for e in events if e["type"] == "message") == ["はい", "発熱があります"]
