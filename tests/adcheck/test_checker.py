"""The 医療広告ガイドライン checker on sample texts: each rule class found (width and kana variants
too), with the span of what staff typed, and ordinary clinic notices left alone."""

from __future__ import annotations

import pytest

from saas.adcheck.checker import CompiledRuleSet
from saas.adcheck.rules import Override, shipped_rules, with_overrides

CHECKER = CompiledRuleSet(shipped_rules())


def rules_found(text: str) -> set[str]:
    return {finding.rule_id for finding in CHECKER.check(text)}


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ("superlative", "当院は地域で日本一の症例数です"),
        ("superlative", "口コミ評価No.1のクリニック"),
        ("superlative", "最高の医療をお届けします"),
        ("guarantee", "この治療で必ず治ります"),
        ("guarantee", "副作用なしで安心"),
        ("exaggeration", "満足度100%の施術"),
        ("exaggeration", "絶対におすすめです"),
        ("testimonial", "治療を受けた患者様の声をご紹介します"),
        ("testimonial", "体験談はこちら"),
        ("before_after", "ビフォーアフター写真を公開中"),
        ("insured_price", "今月は初診料が無料になります"),
        ("insured_price", "保険診療の自己負担を半額にします"),
        ("free_gift", "ご来院の方にもれなくクオカードをプレゼント"),
        ("unapproved", "GLP-1ダイエットはじめました"),
    ],
)
def test_each_rule_class_is_found_in_a_sample_text(rule, text):
    assert rule in rules_found(text)


@pytest.mark.parametrize(
    ("rule", "text"),
    [
        ("superlative", "ｎｏ．１クリニック"),  # full-width letters and dot
        ("superlative", "ＮＯ.１の実績"),
        ("superlative", "日 本 一 の技術"),  # spaces between the characters
        ("guarantee", "必ずなおります"),  # kana instead of 治
        ("exaggeration", "効果１００％"),  # full-width digits and percent
        ("testimonial", "くちこみ掲載中"),  # hiragana of クチコミ
        ("before_after", "ﾋﾞﾌｫｰｱﾌﾀｰ"),  # half-width katakana with voiced marks
        ("before_after", "Before/After 公開"),
        ("free_gift", "ぷれぜんと企画"),
        ("unapproved", "ｇｌｐ－１ダイエット"),
    ],
)
def test_width_and_kana_variants_do_not_slip_through(rule, text):
    assert rule in rules_found(text)


def test_a_finding_points_at_the_phrase_as_typed():
    text = "😀 当院はＮｏ．１です"
    (finding,) = CHECKER.check(text)
    assert (finding.rule_id, finding.severity) == ("superlative", "block")
    assert text[finding.start : finding.end] == finding.phrase == "Ｎｏ．１"
    spaced = "患者様の声（体 験 談）"
    spans = {spaced[f.start : f.end] for f in CHECKER.check(spaced)}
    assert spans == {"患者様の声", "体 験 談"}


def test_before_after_lists_the_missing_details_and_passes_when_all_are_written():
    (finding,) = CHECKER.check("施術前後の写真です。治療内容：ヒアルロン酸注入")
    assert finding.rule_id == "before_after" and finding.severity == "block"
    assert finding.missing == ("費用", "治療期間・回数", "主なリスク・副作用")
    complete = "施術前後の写真です。治療内容：ヒアルロン酸注入、費用：55,000円、治療期間：1回、主なリスク・副作用：腫れ、内出血"
    assert rules_found(complete) == set()


def test_unapproved_treatment_passes_only_with_every_required_note():
    notes = (
        "本治療に用いる医薬品は国内で未承認医薬品です。入手経路：医師の判断により個人輸入しています。"
        "国内で承認されている同一成分の医薬品はありません。諸外国における安全性等の情報は当院でご説明します。"
    )
    (finding,) = [f for f in CHECKER.check("医療ダイエット外来のご案内。" + notes) if f.rule_id == "unapproved"][:1]
    assert finding.missing == ("医薬品副作用被害救済制度の対象外であること",)
    complete = "医療ダイエット外来のご案内。" + notes + "医薬品副作用被害救済制度の対象外です。"
    assert "unapproved" not in rules_found(complete)


def test_price_words_far_from_insured_care_are_not_price_inducement():
    assert rules_found("初診の方へ。駐車場は無料です") == set()
    assert (
        rules_found("保険診療のご案内です。なお、院内の駐車場は3時間まで料金がかかりませんので無料でご利用いただけます")
        == set()
    )


def test_allowed_phrases_are_not_findings():
    assert rules_found("明日の最高気温は35度の予報です。熱中症にご注意ください") == set()
    assert rules_found("術後は絶対安静にしてください") == set()


ORDINARY_NOTICES = [
    # Notices of the kinds the seed article lists (休診・代診, 予防接種, 健康診断, 診療時間, リマインド, 健康情報).
    "【休診のお知らせ】12月29日（月）から1月3日（土）まで年末年始の休診とさせていただきます。"
    "急な発熱などの際は #7119 または休日診療所をご利用ください。",
    "本日は院長が学会出席のため、午後の診療は代診の田中医師が担当いたします。",
    "【予約リマインド】明日 10:30 にご予約をいただいております。保険証・お薬手帳をお持ちください。"
    "ご都合が悪くなった場合はLINEから予約の変更ができます。",
    "【健診のご案内】特定健診の受付を開始しました。受診券と保険証をお持ちのうえ、朝食を抜いてご来院ください。",
    "インフルエンザ予防接種の予約受付を10月1日から開始します。13歳未満の方は2回接種です。",
    "4月から土曜日の診療時間が9:00〜13:00に変わります。ご不便をおかけしますがよろしくお願いいたします。",
    "台風の接近に伴い、明日は臨時休診といたします。災害時の診療については当院のLINEでお知らせします。",
    "季節の健康アドバイス：空気が乾燥する季節です。こまめな手洗いとうがいで風邪を予防しましょう。",
    # Sentences of the article itself.
    "休診情報や予防接種の案内など、重要な情報を患者さんに確実に届けやすいのが特徴です。",
    "予約前日にLINEでリマインドメッセージを送ることで、「うっかり忘れ」による無断キャンセルが減少しています。",
]


@pytest.mark.parametrize("notice", ORDINARY_NOTICES)
def test_ordinary_clinic_notices_are_not_flagged(notice):
    assert CHECKER.check(notice) == []


def test_overrides_switch_off_change_severity_and_add_phrases():
    rules = with_overrides(
        shipped_rules(),
        [
            Override("free_gift", enabled=False),
            Override("exaggeration", severity="block", extra_phrases=("圧倒的",)),
            Override("superlative", allowed_phrases=("最高裁",)),
        ],
    )
    checker = CompiledRuleSet(rules)
    assert checker.check("シールをプレゼント") == []
    (finding,) = checker.check("圧倒的な実績")
    assert (finding.rule_id, finding.severity) == ("exaggeration", "block")
    assert checker.check("最高裁の判決について") == []
    assert [f.rule_id for f in checker.check("最高の技術")] == ["superlative"]
