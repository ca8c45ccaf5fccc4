"""LINE message objects: every problem names the object and field, in Japanese."""

from __future__ import annotations

import pytest

from saas.messaging import builders as b
from saas.messaging.objects import MessageValidationError, ensure_valid, validate_messages


def problems(messages) -> list[str]:
    return [str(p) for p in validate_messages(messages)]


def test_well_formed_messages_of_every_kind_pass():
    bubble = {
        "type": "bubble",
        "body": {"type": "box", "layout": "vertical", "contents": [{"type": "text", "text": "休診のお知らせ"}]},
    }
    messages = [
        b.text("こんにちは"),
        b.image("https://example.jp/a.jpg"),
        b.sticker(446, 1988),
        b.buttons(
            "予約",
            "ご予約はこちら",
            [b.uri_action("予約する", "https://example.jp/r"), b.message_action("電話", "電話")],
            title="予約",
        ),
        b.with_quick_reply(
            b.flex("お知らせ", {"type": "carousel", "contents": [bubble, bubble]}), [b.message_action("はい", "はい")]
        ),
    ]
    assert problems(messages) == []
    assert ensure_valid(messages) is messages


def test_a_long_button_label_names_the_message_the_template_and_the_action():
    label = "あ" * 23
    messages = [b.text("x"), b.buttons("alt", "本文", [b.message_action(label, "t")])]
    assert problems(messages) == ["messages[1].template.actions[0].label: 20文字以内にしてください（現在23文字）"]


def test_more_than_five_messages_are_refused():
    assert problems([b.text("x")] * 6) == ["messages: 1回の配信は5件以内にしてください（現在6件）"]
    assert problems([]) == ["messages: メッセージを1件以上指定してください"]


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b.text(""), "messages[0].text: 入力してください"),
        (b.text("あ" * 5001), "messages[0].text: 5,000文字以内にしてください（現在5,001文字）"),
        (b.image("http://example.jp/a.jpg"), "messages[0].originalContentUrl: https:// で始まるURLにしてください"),
        (
            b.image("https://e.jp/" + "a" * 2000),
            "messages[0].originalContentUrl: 2,000文字以内にしてください（現在2,013文字）",
        ),
        (b.sticker("abc", "1"), "messages[0].packageId: 数字で指定してください"),
        (
            {"type": "video"},
            "messages[0].type: 種類「video」は使えません（使えるもの: text, image, sticker, flex, template）",
        ),
        (
            b.buttons("alt", "x" * 161, [b.message_action("a", "a")]),
            "messages[0].template.text: 160文字以内にしてください（現在161文字）",
        ),
        (
            b.buttons("alt", "本文", [b.message_action("a", "a")] * 5),
            "messages[0].template.actions: 4件以内にしてください（現在5件）",
        ),
        (
            b.buttons("alt", "本文", [b.message_action("a", "a")], title="t" * 41),
            "messages[0].template.title: 40文字以内にしてください（現在41文字）",
        ),
        (
            b.buttons("alt", "本文", [b.uri_action("a", "javascript:alert(1)")]),
            "messages[0].template.actions[0].uri: http://・https://・line://・tel: のいずれかで始めてください",
        ),
        (
            b.buttons("a" * 401, "本文", [b.message_action("a", "a")]),
            "messages[0].altText: 400文字以内にしてください（現在401文字）",
        ),
        (
            b.flex("a" * 1501, {"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": []}}),
            "messages[0].altText: 1,500文字以内にしてください（現在1,501文字）",
        ),
    ],
)
def test_each_limit_is_reported_on_its_field(message, expected):
    assert expected in problems([message])


def test_buttons_text_is_limited_to_60_with_a_title_or_image():
    found = problems([b.buttons("alt", "x" * 61, [b.message_action("a", "a")], thumbnail_url="https://e.jp/i.png")])
    assert found == [
        "messages[0].template.text: 60文字以内にしてください（現在61文字）。画像またはタイトルがあるときの上限です"
    ]


def test_quick_reply_items_are_limited_to_13_and_checked_like_actions():
    message = b.with_quick_reply(b.text("選んでください"), [b.message_action(f"候補{i}", "x") for i in range(14)])
    message["quickReply"]["items"][2]["action"]["label"] = ""
    assert problems([b.text("a"), message]) == [
        "messages[1].quickReply.items: 13件以内にしてください（現在14件）",
        "messages[1].quickReply.items[2].action.label: 入力してください",
    ]


def test_flex_problems_point_inside_the_container():
    bubble = {
        "type": "bubble",
        "hero": {"type": "image", "url": "http://e.jp/x.png"},
        "body": {"type": "box", "contents": []},
    }
    carousel = {
        "type": "carousel",
        "contents": [bubble] + [{"type": "bubble", "body": {"type": "box", "layout": "vertical", "contents": []}}] * 12,
    }
    found = problems([b.flex("alt", carousel)])
    assert "messages[0].contents.contents: 12件以内にしてください（現在13件）" in found
    assert "messages[0].contents.contents[0].hero.url: https:// で始まるURLにしてください" in found
    assert any(p.startswith("messages[0].contents.contents[0].body.layout: 種類未指定は使えません") for p in found)


def test_a_flex_bubble_over_30kb_is_refused_with_its_size():
    big = {
        "type": "bubble",
        "body": {"type": "box", "layout": "vertical", "contents": [{"type": "text", "text": "あ" * 11000}]},
    }
    found = problems([b.flex("alt", big)])
    assert len(found) == 1 and found[0].startswith(
        "messages[0].contents: Flexメッセージのデータが大きすぎます（30,000バイト以内"
    )


def test_ensure_valid_raises_with_every_problem():
    with pytest.raises(MessageValidationError) as error:
        ensure_valid([b.text(""), b.image("ftp://x")])
    assert [p.message_index for p in error.value.problems] == [0, 1, 1]


def test_text_length_is_counted_as_line_counts_it_in_utf16_code_units():
    emoji = "😷"  # outside the BMP: two UTF-16 code units, as LINE counts it
    assert problems([b.text(emoji * 2500)]) == []
    assert problems([b.text(emoji * 2600)]) == ["messages[0].text: 5,000文字以内にしてください（現在5,200文字）"]
    assert problems([b.text("a" + emoji * 2500)]) == ["messages[0].text: 5,000文字以内にしてください（現在5,001文字）"]


def test_a_cut_never_splits_an_emoji():
    from saas.messaging.limits import cut_to_utf16, utf16_length

    text = "休" + "😷" * 3000  # 5,000 units would end inside an emoji
    cut = cut_to_utf16(text, 5000)
    assert utf16_length(cut) == 4999 and cut == "休" + "😷" * 2499
    assert cut_to_utf16("短い", 5000) == "短い"
