"""Templates with variables: safe rendering, unknown variables refused, identical renderings grouped."""

from __future__ import annotations

from datetime import datetime
from types import SimpleNamespace

import pytest

from saas.messaging import builders as b
from saas.messaging.objects import MessageValidationError
from saas.messaging.variables import group_recipients_by_rendering, is_personalised, prepare_template, render

CLINIC = SimpleNamespace(name="さくら内科", phone="03-1234-5678", address="東京都新宿区1-1", website_url="")


def friend(n: int, name: str) -> SimpleNamespace:
    return SimpleNamespace(id=n, display_name=name, line_user_id=f"U{n:032x}")


def test_variables_are_rendered_everywhere_in_the_message():
    template = [
        b.text("{{friend.display_name}}様\n{{clinic.name}}（{{ clinic.phone }}）"),
        b.buttons("{{clinic.name}}より", "{{clinic.address}}", [b.message_action("{{clinic.name}}", "予約")]),
    ]
    groups = group_recipients_by_rendering(template, CLINIC, [friend(1, "山田")])
    ((messages, friends),) = groups
    assert messages[0]["text"] == "山田様\nさくら内科（03-1234-5678）"
    assert messages[1]["altText"] == "さくら内科より" and messages[1]["template"]["text"] == "東京都新宿区1-1"
    assert friends[0].id == 1


def test_an_unknown_variable_is_refused_listing_the_allowed_ones():
    with pytest.raises(MessageValidationError) as error:
        prepare_template([b.text("{{friend.age}}歳の方へ {{ clinic.__class__ }}")])
    message = str(error.value)
    assert message.startswith("messages[0].text: 使えない変数 {{friend.age}}、{{clinic.__class__}} があります")
    assert "{{clinic.name}}" in message and "{{friend.display_name}}" in message


def test_rendering_never_evaluates_code():
    assert render("{{ 7*7 }} {{ config }} {% if 1 %}x{% endif %}", {}) == "  {% if 1 %}x{% endif %}"


def test_a_template_without_personal_variables_is_one_multicast_group():
    friends = [friend(n, f"名前{n}") for n in range(1200)]
    groups = group_recipients_by_rendering([b.text("{{clinic.name}}は明日休診です")], CLINIC, friends)
    assert len(groups) == 1 and len(groups[0].friends) == 1200 and not groups[0].needs_push
    assert not is_personalised(groups[0].messages)


def test_recipients_with_identical_renderings_are_grouped_and_unique_ones_pushed():
    friends = [friend(1, "佐藤"), friend(2, "鈴木"), friend(3, "佐藤"), friend(4, "田中"), friend(5, "佐藤")]
    groups = group_recipients_by_rendering([b.text("{{friend.display_name}}様")], CLINIC, friends)
    summary = [(g.messages[0]["text"], [f.id for f in g.friends], g.needs_push) for g in groups]
    assert summary[0] == ("佐藤様", [1, 3, 5], False)
    assert sorted(summary[1:]) == [("田中様", [4], True), ("鈴木様", [2], True)]


def test_booking_variables_come_from_each_friends_booking_in_japan_time():
    bookings = {
        1: SimpleNamespace(starts_at=datetime(2025, 7, 3, 1, 0)),
        2: SimpleNamespace(starts_at=datetime(2025, 7, 3, 1, 0)),
    }
    groups = group_recipients_by_rendering(
        [b.text("ご予約は{{booking.starts_at}}です")],
        CLINIC,
        [friend(1, "A"), friend(2, "B")],
        booking_for=lambda f: bookings[f.id],
    )
    assert len(groups) == 1 and groups[0].messages[0]["text"] == "ご予約は7月3日(木) 10:00です"


def test_a_rendering_that_breaks_a_limit_is_refused():
    with pytest.raises(MessageValidationError, match=r"messages\[0\].text: 5,000文字以内"):
        group_recipients_by_rendering(
            [b.text("{{friend.display_name}}" + "あ" * 4995)], CLINIC, [friend(1, "長い名前の患者")]
        )
