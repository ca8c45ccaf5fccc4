"""Does a chat message look like sensitive personal data (要配慮個人情報, My Number...)?

Patterns are per clinic (PrivacySettings) with defaults below. Text is NFKC-normalised
first so full-width digits (１２３４) match like ASCII ones. A hit is only a warning for
staff: nothing is blocked or changed.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.extensions import db
from saas.privacy.models import PrivacySettings

MAX_PATTERN_LENGTH = 200

DEFAULT_PATTERNS = [
    {"label": "マイナンバー（12桁）", "pattern": r"(?<!\d)\d{4}[ -]?\d{4}[ -]?\d{4}(?!\d)"},
    {"label": "保険証の番号", "pattern": r"(保険証|被保険者|保険者番号|記号)\D{0,8}\d{2,}"},
    {"label": "保険者番号（8桁）", "pattern": r"(?<!\d)\d{8}(?!\d)"},
    # Years up to 2019 only: later dates in a chat are far more often appointments than births.
    {"label": "生年月日", "pattern": r"(19\d\d|20[01]\d)\s*[年/.\-]\s*\d{1,2}\s*[月/.\-]\s*\d{1,2}"},
    {"label": "生年月日", "pattern": r"(明治|大正|昭和|平成|令和)\s*(\d{1,2}|元)\s*年\s*\d{1,2}\s*月\s*\d{1,2}"},
    {"label": "生年月日", "pattern": r"生年月日|誕生日"},
]
DEFAULT_KEYWORDS = [
    "診断", "病名", "癌", "悪性腫瘍", "糖尿病", "高血圧", "うつ病", "統合失調症", "認知症",
    "HIV", "肝炎", "妊娠", "不妊", "障害者手帳", "精神科", "処方薬",
]  # fmt: skip
DEFAULT_PRIVACY_NOTE = (
    "LINEのトークには、保険証番号・マイナンバー・生年月日・病名などの要配慮個人情報を"
    "できるだけ含めないでください。必要な場合は来院時またはお電話でお伺いします。"
)


@dataclass(frozen=True)
class Detector:
    """A clinic's compiled rules."""

    rules: tuple[tuple[str, re.Pattern], ...]
    keywords: tuple[str, ...]
    privacy_note: str

    def findings(self, text: str | None) -> list[str]:
        """Labels of what ``text`` seems to contain, without repeats (empty: nothing found)."""
        if not text:
            return []
        normalized = unicodedata.normalize("NFKC", text)
        found = [label for label, pattern in self.rules if pattern.search(normalized)]
        folded = normalized.casefold()
        if any(word.casefold() in folded for word in self.keywords):
            found.append("病名・診療内容")
        return list(dict.fromkeys(found))


def get_settings(clinic_id: int, *, create: bool = False) -> PrivacySettings | None:
    """The clinic's settings row (created with the defaults when ``create``)."""
    row = db.session.scalars(sa.select(PrivacySettings).where(PrivacySettings.clinic_id == clinic_id)).first()
    if row is None and create:
        row = PrivacySettings(
            clinic_id=clinic_id,
            patterns=[dict(p) for p in DEFAULT_PATTERNS],
            keywords=list(DEFAULT_KEYWORDS),
            privacy_note=DEFAULT_PRIVACY_NOTE,
        )
        db.session.add(row)
    return row


def default_settings() -> PrivacySettings:
    """An unsaved settings row holding the defaults (for showing the form)."""
    return PrivacySettings(
        patterns=[dict(p) for p in DEFAULT_PATTERNS], keywords=list(DEFAULT_KEYWORDS), privacy_note=DEFAULT_PRIVACY_NOTE
    )


def detector_for(clinic_id: int) -> Detector:
    """The clinic's detector (defaults until the clinic saves its own settings)."""
    row = get_settings(clinic_id)
    patterns = row.patterns if row is not None else DEFAULT_PATTERNS
    keywords = row.keywords if row is not None else DEFAULT_KEYWORDS
    note = row.privacy_note if row is not None and row.privacy_note else DEFAULT_PRIVACY_NOTE
    rules = []
    for spec in patterns or []:
        try:
            rules.append((spec["label"], re.compile(spec["pattern"])))
        except (re.error, KeyError, TypeError):
            continue  # saved patterns are validated; an old broken one must not break the inbox
    return Detector(tuple(rules), tuple(k for k in keywords or [] if k), note)


def parse_patterns(text: str) -> tuple[list[dict], list[str]]:
    """Lines of ``label: regex`` from the settings form → (patterns, errors)."""
    patterns, errors = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        label, sep, pattern = line.partition(":")
        label, pattern = label.strip(), pattern.strip()
        if not sep or not label or not pattern:
            errors.append(_("%(line)s行目: 「名前: 正規表現」の形で入力してください。", line=number))
            continue
        if len(pattern) > MAX_PATTERN_LENGTH:
            errors.append(
                _("%(line)s行目: 正規表現は%(max)s文字以内にしてください。", line=number, max=MAX_PATTERN_LENGTH)
            )
            continue
        try:
            re.compile(pattern)
        except re.error as exc:
            errors.append(_("%(line)s行目: 正規表現が正しくありません（%(error)s）。", line=number, error=exc))
            continue
        patterns.append({"label": label, "pattern": pattern})
    return patterns, errors


def format_patterns(patterns: list[dict]) -> str:
    return "\n".join(f"{p['label']}: {p['pattern']}" for p in patterns)
