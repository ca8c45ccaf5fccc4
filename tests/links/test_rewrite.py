"""Which URLs of LINE message objects are swapped for short links, and which are left alone."""

from __future__ import annotations

from saas.links.rewrite import links_in, rewrite, rewrite_rich_menu

FLEX = {
    "type": "flex",
    "altText": "お知らせ https://alt.example.jp/",
    "contents": {
        "type": "bubble",
        "hero": {"type": "image", "url": "https://cdn.example.jp/hero.png",
                 "action": {"type": "uri", "uri": "https://hero.example.jp/"}},
        "body": {"type": "box", "layout": "vertical", "contents": [
            {"type": "text", "text": "詳しくは https://text-in-flex.example.jp/"}]},
        "footer": {"type": "box", "layout": "vertical", "contents": [
            {"type": "button", "action": {"type": "uri", "label": "予約", "uri": "https://book.example.jp/",
                                          "altUri": {"desktop": "https://desktop.example.jp/"}}}]},
    },
}  # fmt: skip
IMAGEMAP = {
    "type": "imagemap",
    "baseUrl": "https://cdn.example.jp/map",
    "altText": "地図",
    "baseSize": {"width": 1040, "height": 1040},
    "actions": [
        {"type": "uri", "linkUri": "https://map.example.jp/", "area": {"x": 0, "y": 0, "width": 520, "height": 1040}},
        {"type": "message", "text": "https://not-a-link.example.jp/", "area": {"x": 520, "y": 0, "width": 520, "height": 1040}},
    ],
}  # fmt: skip
TEXT = {
    "type": "text",
    "text": "ご予約はhttps://a.example.jp/x?y=1&z=2。電話はtel:0300000000、LINEはhttps://line.me/R/ti/p/@clinic、"
    "（https://b.example.jp/path）をご覧ください.",
    "quickReply": {"items": [{"type": "action", "action": {"type": "uri", "label": "HP", "uri": "https://quick.example.jp/"}}]},
}  # fmt: skip


def swapped(message):
    (out,) = rewrite([message], lambda url: f"<{url}>")
    return out


def test_uri_actions_everywhere_are_swapped_and_image_addresses_are_not():
    flex = swapped(FLEX)
    assert flex["contents"]["hero"]["url"] == "https://cdn.example.jp/hero.png"
    assert flex["contents"]["hero"]["action"]["uri"] == "<https://hero.example.jp/>"
    button = flex["contents"]["footer"]["contents"][0]["action"]
    assert (
        button["uri"] == "<https://book.example.jp/>" and button["altUri"]["desktop"] == "<https://desktop.example.jp/>"
    )
    assert flex["contents"]["body"]["contents"][0]["text"] == "詳しくは https://text-in-flex.example.jp/", (
        "not tappable"
    )
    assert flex["altText"] == FLEX["altText"]
    imagemap = swapped(IMAGEMAP)
    assert (
        imagemap["baseUrl"] == IMAGEMAP["baseUrl"] and imagemap["actions"][0]["linkUri"] == "<https://map.example.jp/>"
    )
    assert imagemap["actions"][1]["text"] == "https://not-a-link.example.jp/"


def test_urls_in_text_end_at_japanese_and_punctuation_and_lines_own_links_stay():
    text = swapped(TEXT)
    assert text["text"] == (
        "ご予約は<https://a.example.jp/x?y=1&z=2>。電話はtel:0300000000、LINEはhttps://line.me/R/ti/p/@clinic、"
        "（<https://b.example.jp/path>）をご覧ください."
    )
    assert text["quickReply"]["items"][0]["action"]["uri"] == "<https://quick.example.jp/>"
    assert links_in([TEXT]) == [
        "https://a.example.jp/x?y=1&z=2",
        "https://b.example.jp/path",
        "https://quick.example.jp/",
    ]


def test_rich_menu_uri_areas_are_swapped_and_other_actions_kept():
    request = {"areas": [
        {"bounds": {}, "action": {"type": "uri", "label": "予約", "uri": "https://book.example.jp/"}},
        {"bounds": {}, "action": {"type": "uri", "label": "電話", "uri": "tel:0300000000"}},
        {"bounds": {}, "action": {"type": "message", "label": "診療時間", "text": "診療時間"}},
    ]}  # fmt: skip
    areas = rewrite_rich_menu(request, lambda url: f"<{url}>")["areas"]
    assert [a["action"].get("uri") for a in areas] == ["<https://book.example.jp/>", "tel:0300000000", None]
    assert request["areas"][0]["action"]["uri"] == "https://book.example.jp/", "the original is not changed"
