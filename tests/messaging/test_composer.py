"""The composer page: live preview like a LINE chat, errors beside each message, no fake sending."""

from __future__ import annotations

import re

import pytest

from tests.factories import gen_clinic, gen_user
from tests.helpers import login


@pytest.fixture
def clinic():
    return gen_clinic(name="さくら内科", phone="03-1234-5678")


@pytest.fixture
def sender_client(client, clinic):
    login(client, gen_user("sender", clinic=clinic))
    return client


def form_token(client, clinic) -> str:
    page = client.get(f"/c/{clinic.slug}/messages/compose").get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def post(client, clinic, path, **fields):
    return client.post(f"/c/{clinic.slug}/messages/{path}", data={"csrf_token": form_token(client, clinic), **fields})


def test_the_composer_is_in_the_sidebar_and_offers_every_kind_of_message(sender_client, clinic):
    page = sender_client.get(f"/c/{clinic.slug}/messages/compose").get_data(as_text=True)
    assert "メッセージ作成" in page and 'hx-post="/c/' in page
    for label in ("テキスト", "画像", "スタンプ", "ボタン", "Flex（カード）", "クイックリプライ"):
        assert label in page
    assert page.count('name="m4_type"') == 1 and 'name="m5_type"' not in page, "five messages at most"


def test_preview_renders_the_messages_as_chat_bubbles_with_sample_variables(sender_client, clinic):
    response = post(
        sender_client,
        clinic,
        "preview",
        m0_type="text",
        m0_text="{{friend.display_name}}様、{{clinic.name}}です。ご予約は{{booking.starts_at}}です。",
        m1_type="buttons",
        m1_title="ご予約",
        m1_text="こちらからどうぞ",
        m1_action0_label="予約する",
        m1_action0_kind="uri",
        m1_action0_value="https://example.jp/r",
        quick_replies="予約する|予約したいです\n診療時間",
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'class="line-bubble line-text">山田 花子様、さくら内科' in page and "7月3日(木) 10:00" in page
    assert 'class="line-card-title">ご予約' in page and 'class="line-card-action">予約する' in page
    assert 'class="line-quick-item">診療時間' in page
    assert '<p class="field-error">' not in page


def test_preview_shows_each_error_beside_its_message(sender_client, clinic):
    response = post(
        sender_client,
        clinic,
        "preview",
        m0_type="text",
        m0_text="{{friend.age}}歳の方へ",
        m2_type="buttons",
        m2_text="本文",
        m2_action0_label="あ" * 23,
        m2_action0_value="t",
        m3_type="image",
        m3_image_url="http://example.jp/a.jpg",
    )
    page = response.get_data(as_text=True)
    slot0 = re.search(r'id="slot-errors-0"[^>]*hx-swap-oob="true">(.*?)</div>', page, re.S).group(1)
    slot2 = re.search(r'id="slot-errors-2"[^>]*hx-swap-oob="true">(.*?)</div>', page, re.S).group(1)
    slot3 = re.search(r'id="slot-errors-3"[^>]*hx-swap-oob="true">(.*?)</div>', page, re.S).group(1)
    assert "使えない変数 {{friend.age}}" in slot0
    assert "messages[1].template.actions[0].label: 20文字以内にしてください（現在23文字）" in slot2
    assert "messages[2].originalContentUrl: https:// で始まるURLにしてください" in slot3


def test_a_broken_flex_json_is_reported_on_its_message(sender_client, clinic):
    page = post(
        sender_client, clinic, "preview", m0_type="flex", m0_flex_alt_text="お知らせ", m0_flex_json="{oops"
    ).get_data(as_text=True)
    assert "messages[0].contents: Flex の JSON を読み取れません" in page


def test_valid_messages_continue_to_choosing_the_audience_without_sending(sender_client, clinic):
    response = post(sender_client, clinic, "send", m0_type="text", m0_text="明日は休診です")
    assert response.status_code == 302 and "/deliveries/new?draft=" in response.headers["Location"]
    page = sender_client.get(response.headers["Location"]).get_data(as_text=True)
    assert "送信先" in page and "明日は休診です" in page


def test_sending_invalid_messages_shows_the_errors_on_the_form(sender_client, clinic):
    response = post(sender_client, clinic, "send", m0_type="sticker", m0_package_id="abc", m0_sticker_id="1")
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "messages[0].packageId: 数字で指定してください" in page


def test_staff_who_may_not_send_cannot_open_the_composer(client, clinic):
    login(client, gen_user("viewer", clinic=clinic))
    assert client.get(f"/c/{clinic.slug}/messages/compose").status_code == 403
    assert "メッセージ作成" not in client.get(f"/c/{clinic.slug}/").get_data(as_text=True)
