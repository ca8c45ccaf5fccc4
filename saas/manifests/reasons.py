"""Why a manifest field is invalid, in Japanese first and pydantic's English second.

Our own validators already say why in Japanese (``ValueError`` messages); pydantic's built-in
checks ("Field required", "Input should be a valid integer") are worded here by error type,
with the constraint they report (``ctx``) filled in.
"""

from __future__ import annotations

import yaml

# error type → Japanese, formatted with the error's ``ctx``
JAPANESE = {
    "missing": "必須の項目です",
    "string_type": "文字列で書いてください",
    "int_type": "整数で書いてください",
    "int_parsing": "整数で書いてください",
    "int_from_float": "小数ではなく整数で書いてください",
    "float_type": "数値で書いてください",
    "float_parsing": "数値で書いてください",
    "bool_type": "true か false で書いてください",
    "bool_parsing": "true か false で書いてください",
    "literal_error": "次のどれかで書いてください: {expected}",
    "enum": "次のどれかで書いてください: {expected}",
    "string_too_short": "{min_length}文字以上で書いてください",
    "string_too_long": "{max_length}文字以内で書いてください",
    "too_short": "{min_length}個以上必要です",
    "too_long": "{max_length}個以内にしてください",
    "string_pattern_mismatch": "形式が正しくありません（{pattern}）",
    "greater_than": "{gt}より大きい数にしてください",
    "greater_than_equal": "{ge}以上にしてください",
    "less_than": "{lt}より小さい数にしてください",
    "less_than_equal": "{le}以下にしてください",
    "list_type": "リスト（「- 」で始まる行）で書いてください",
    "set_type": "リスト（「- 」で始まる行）で書いてください",
    "dict_type": "「項目名: 値」の形で書いてください",
    "model_type": "「項目名: 値」の形で書いてください",
    "model_attributes_type": "「項目名: 値」の形で書いてください",
    "date_type": "日付は YYYY-MM-DD で書いてください",
    "date_parsing": "日付は YYYY-MM-DD で書いてください",
    "date_from_datetime_parsing": "日付は YYYY-MM-DD で書いてください",
    "date_from_datetime_inexact": "日付は YYYY-MM-DD で書いてください（時刻は付けません）",
    "datetime_type": "日時は YYYY-MM-DD HH:MM で書いてください",
    "datetime_parsing": "日時は YYYY-MM-DD HH:MM で書いてください",
    "datetime_from_date_parsing": "日時は YYYY-MM-DD HH:MM で書いてください",
    "time_type": "時刻は HH:MM で書いてください",
    "time_parsing": "時刻は HH:MM で書いてください",
    "url_type": "URL（https://…）で書いてください",
    "url_parsing": "URL（https://…）で書いてください",
    "url_scheme": "URL は http:// か https:// で始めてください",
    "url_too_long": "URL が長すぎます",
    "extra_forbidden": "この項目はマニフェストにありません（綴りを確認してください）",
    "union_tag_invalid": "種類（{discriminator}）は次のどれかです: {expected_tags}",
    "union_tag_not_found": "種類（{discriminator}）を書いてください",
}
FALLBACK = "値が正しくありません"


def field_reason(error: dict) -> str:
    """One pydantic error as the manifest reports it: Japanese, pydantic's English, the value."""
    english = error["msg"].removeprefix("Value error, ")
    if error["type"] == "value_error":  # our own validators: already Japanese
        reason = english
    else:
        template = JAPANESE.get(error["type"], FALLBACK)
        try:
            reason = f"{template.format(**error.get('ctx', {}))}（{english}）"
        except (KeyError, IndexError):
            reason = f"{FALLBACK}（{english}）"
    if error["type"] in ("missing", "extra_forbidden"):
        return reason
    return f"{reason} (値: {error.get('input')!r})"


def yaml_reason(exc: yaml.YAMLError) -> str:
    """A YAML syntax error: where it is, in Japanese, then PyYAML's own words."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{mark.line + 1}行目 {mark.column + 1}文字目: " if mark is not None else ""
    problem = getattr(exc, "problem", None) or str(exc)
    return f"{where}YAMLとして読めません（インデントや「:」「-」の位置を確認してください）（{problem}）"
