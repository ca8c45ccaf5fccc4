"""Auto-reply: normalised matching, computed answers, priorities, cache and hand-off."""

from __future__ import annotations

from datetime import datetime, time
from types import SimpleNamespace

import pytest

from saas.autoreply import matcher, services
from saas.autoreply.models import AutoReplyRule, AutoReplySettings, ConversationState
from saas.autoreply.responders import answer_with_autoreply, greet_new_friend
from saas.extensions import db
from saas.schedule.models import Closure, WeeklyBlock
from saas.schedule.services import clinic_now
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_clinic
from tests.helpers import assert_rows_isolated


def text_event(text: str) -> dict:
    return {"type": "message", "replyToken": "r", "message": {"type": "text", "id": "1", "text": text}}


def friend(user_id: str = "U0001", name: str = "山田 花子"):
    return SimpleNamespace(line_user_id=user_id, display_name=name)


@pytest.fixture
def clinic():
    clinic = gen_clinic(phone="03-0000-1111", parking="提携駐車場（タイムズ青葉台）をご利用ください。")
    with tenant_scope(clinic.id):
        db.session.add_all(
            [
                AutoReplyRule(name="駐車場", keywords=["駐車場", "ちゅうしゃじょう"], computed="parking"),
                AutoReplyRule(name="今日の診療時間", keywords=["今日の診療", "今日は"], computed="today_hours"),
                AutoReplyRule(
                    name="予約",
                    keywords=["予約"],
                    messages=[{"type": "text", "text": "{{friend.display_name}}さん、予約は{{clinic.phone}}へ"}],
                ),
            ]
        )
        for weekday in range(7):
            db.session.add(WeeklyBlock(weekday=weekday, label="午前", start="09:00", end="12:30"))
            db.session.add(WeeklyBlock(weekday=weekday, label="午後", start="14:00", end="18:00"))
        db.session.commit()
    return clinic


def answer(clinic, text, who=None):
    messages = answer_with_autoreply(clinic, who or friend(), text_event(text))
    db.session.commit()
    return messages


def test_parking_in_kanji_hiragana_and_half_width_katakana_reaches_the_same_rule(clinic):
    with tenant_scope(clinic.id):
        names = {text: services.reply_to(clinic, text, dry_run=True).entry.name for text in
                 ("駐車場はありますか", "ちゅうしゃじょう", "ﾁｭｳｼｬｼﾞｮｳ ある？", "チュウシャジョウ")}  # fmt: skip
    assert set(names.values()) == {"駐車場"}
    assert "タイムズ青葉台" in answer(clinic, "ﾁｭｳｼｬｼﾞｮｳ")[0]["text"]


def test_todays_hours_on_a_closure_day_answers_with_the_closure(clinic):
    today = clinic_now(clinic).date()
    with tenant_scope(clinic.id):
        db.session.add(Closure(starts_on=today, ends_on=today, reason="院長学会出席のため"))
        db.session.commit()
    text = answer(clinic, "今日の診療時間を教えて")[0]["text"]
    assert "休診" in text and "院長学会出席のため" in text
    assert "次の診療日は" in text


def test_todays_hours_on_an_ordinary_day_lists_the_blocks(clinic):
    text = answer(clinic, "今日は何時まで？")[0]["text"]
    assert "午前 09:00〜12:30" in text and "午後 14:00〜18:00" in text


def test_template_variables_are_filled_with_clinic_and_friend(clinic):
    assert answer(clinic, "予約したい")[0]["text"] == "山田 花子さん、予約は03-0000-1111へ"


def test_higher_priority_rule_wins_and_active_hours_are_respected(clinic):
    with tenant_scope(clinic.id):
        db.session.add(AutoReplyRule(name="夜間予約", keywords=["予約"], priority=200, active_from="19:00",
                                     active_until="08:00", messages=[{"type": "text", "text": "夜間は翌朝以降に"}]))  # fmt: skip
        db.session.commit()
        night = services.reply_to(clinic, "予約", now=datetime(2026, 6, 1, 22, 0), dry_run=True)
        day = services.reply_to(clinic, "予約", now=datetime(2026, 6, 1, 10, 0), dry_run=True)
    assert night.entry.name == "夜間予約"
    assert day.entry.name == "予約"


def test_exact_rules_answer_only_the_whole_message(clinic):
    with tenant_scope(clinic.id):
        db.session.add(AutoReplyRule(name="ありがとう", match_type="exact", keywords=["ありがとう"],
                                     messages=[{"type": "text", "text": "どういたしまして"}]))  # fmt: skip
        db.session.commit()
        assert services.reply_to(clinic, "ありがとう！", dry_run=True).kind == "none"
        assert services.reply_to(clinic, "アリガトウ", dry_run=True).entry.name == "ありがとう"


def test_regex_rule_runs_behind_its_literal(clinic):
    with tenant_scope(clinic.id):
        db.session.add(AutoReplyRule(name="予防接種の予約", match_type="regex", keywords=[r"ワクチン.*(予約|ヨヤク)"],
                                     required_literal="ワクチン", priority=300,
                                     messages=[{"type": "text", "text": "ワクチン予約はWebで"}]))  # fmt: skip
        db.session.commit()
        assert services.reply_to(clinic, "わくちんのよやく", dry_run=True).entry.name == "予防接種の予約"


def test_editing_a_rule_invalidates_the_compiled_rules(clinic):
    with tenant_scope(clinic.id):
        assert services.reply_to(clinic, "診察券をなくした", dry_run=True).kind == "none"
        compiled = matcher.compiled_for(clinic)
        assert matcher.compiled_for(clinic) is compiled  # cached while nothing changes
        rule = db.session.query(AutoReplyRule).filter_by(name="予約").one()
        rule.keywords = ["予約", "診察券"]
        db.session.commit()
        assert matcher.compiled_for(clinic) is not compiled
        assert services.reply_to(clinic, "診察券をなくした", dry_run=True).entry.name == "予約"


def test_handoff_phrase_pauses_the_bot_until_staff_resume(clinic):
    patient = friend("U-handoff")
    reply = answer(clinic, "スタッフと話したい", patient)
    assert "スタッフにおつなぎします" in reply[0]["text"]
    assert answer(clinic, "駐車場", patient) is None  # staff hold the conversation
    assert answer(clinic, "駐車場", friend("U-other")) is not None  # others still get the bot
    with tenant_scope(clinic.id):
        services.resume_bot(clinic.id, "U-handoff")
        db.session.commit()
    assert answer(clinic, "駐車場", patient) is not None


def test_fallback_answers_what_no_rule_knows(clinic):
    assert answer(clinic, "保険適用外の治療について") is None
    with tenant_scope(clinic.id):
        services.get_settings(clinic.id).fallback_messages = [
            {"type": "text", "text": "{{clinic.name}}です。確認してお返事します。"}
        ]
        db.session.commit()
    assert answer(clinic, "保険適用外の治療について")[0]["text"] == f"{clinic.name}です。確認してお返事します。"


def test_greeting_mentions_todays_closure(clinic):
    today = clinic_now(clinic).date()
    with tenant_scope(clinic.id):
        services.get_settings(clinic.id).greeting_messages = [
            {"type": "text", "text": "{{friend.display_name}}さま、友だち追加ありがとうございます"}
        ]
        db.session.add(Closure(starts_on=today, ends_on=today, reason="停電のため"))
        db.session.commit()
    messages = greet_new_friend(clinic, friend(), {"type": "follow"})
    assert messages[0]["text"].startswith("山田 花子さま")
    assert "停電のため" in messages[1]["text"]


def test_non_text_messages_are_left_to_others(clinic):
    assert answer_with_autoreply(clinic, friend(), {"type": "message", "message": {"type": "sticker"}}) is None


def test_autoreply_rows_are_isolated_between_clinics(as_platform):
    a, b = gen_clinic(), gen_clinic()
    rows = {}
    for clinic in (a, b):
        rule = AutoReplyRule(clinic_id=clinic.id, name="r", keywords=["x"])
        state = ConversationState(clinic_id=clinic.id, line_user_id="U1")
        settings = AutoReplySettings(clinic_id=clinic.id, handoff_phrases=[])
        db.session.add_all([rule, state, settings])
        db.session.commit()
        rows[clinic.id] = (rule.id, state.id, settings.id)
    for index, model in enumerate((AutoReplyRule, ConversationState, AutoReplySettings)):
        assert_rows_isolated(model, db.session.get(model, rows[a.id][index]), db.session.get(model, rows[b.id][index]))


def test_clock_outside_active_window_is_not_matched():
    entry = matcher.Entry("rule:1", "x", 1, active_from="09:00", active_until="12:00")
    assert entry.active_at(time(10, 0)) and not entry.active_at(time(13, 0))
