"""Form questions as data: checking a clinic's definition, and reading a patient's answers.

A definition is checked whole before it is stored (:func:`clean`): a question that maps to a
friend field must fit that field (a choice question's options must all be the field's), and a
sensitive question (要配慮個人情報) writes to nothing outside the encrypted answer: no field,
no tag, no visit, because fields and tags are shown to every staff member and exported.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.extensions import db
from saas.fields import services as fields
from saas.fields.models import FieldKind, FriendField
from saas.forms.models import QuestionKind
from saas.friends.consent import KINDS as CONSENT_KINDS
from saas.friends.models import Tag

MAX_QUESTIONS = 40
KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_TEXT = 2000
CHOICE_KINDS = (QuestionKind.CHOICE, QuestionKind.MULTI_CHOICE)
# Which friend field kinds a question of each kind may write to.
FIELD_KINDS = {
    QuestionKind.TEXT: (FieldKind.TEXT,),
    QuestionKind.NUMBER: (FieldKind.NUMBER, FieldKind.TEXT),
    QuestionKind.DATE: (FieldKind.DATE, FieldKind.TEXT),
    QuestionKind.CHOICE: (FieldKind.CHOICE, FieldKind.TEXT),
    QuestionKind.MULTI_CHOICE: (FieldKind.MULTI_CHOICE,),
    QuestionKind.CONSENT: (),
}


class QuestionProblem(ValueError):
    """What is wrong with a form's definition (shown to staff, in Japanese)."""


def _choices(raw) -> list[str]:
    return fields._choices(raw)


def _field(question: dict, label: str) -> int | None:
    field_id = question.get("field_id")
    if not field_id:
        return None
    field = db.session.get(FriendField, int(field_id))
    if field is None:
        raise QuestionProblem(_("「%(label)s」の書き込み先の項目がありません。", label=label))
    if field.kind not in FIELD_KINDS[question["kind"]]:
        raise QuestionProblem(_("「%(label)s」は項目「%(field)s」の種類に合いません。", label=label, field=field.label))
    if field.has_choices and not set(question["choices"]) <= set(field.choices):
        raise QuestionProblem(
            _("「%(label)s」の選択肢は項目「%(field)s」の選択肢から選んでください。", label=label, field=field.label)
        )
    return field.id


def _tags(question: dict, label: str) -> dict[str, int]:
    wanted = {str(k): int(v) for k, v in (question.get("tags") or {}).items() if v}
    if not wanted:
        return {}
    if question["kind"] not in CHOICE_KINDS:
        raise QuestionProblem(_("「%(label)s」: タグは選択式の質問にだけ付けられます。", label=label))
    unknown = [choice for choice in wanted if choice not in question["choices"]]
    if unknown:
        raise QuestionProblem(_("「%(label)s」: 「%(choice)s」は選択肢にありません。", label=label, choice=unknown[0]))
    known = set(db.session.scalars(sa.select(Tag.id).where(Tag.id.in_(list(wanted.values())))))
    return {choice: tag_id for choice, tag_id in wanted.items() if tag_id in known}


def _one(raw: dict, key: str) -> dict:
    label = str(raw.get("label") or "").strip()[:200]
    if not label:
        raise QuestionProblem(_("質問文を入力してください。"))
    kind = str(raw.get("kind") or QuestionKind.TEXT)
    if kind not in tuple(QuestionKind):
        raise QuestionProblem(_("「%(label)s」の種類を選んでください。", label=label))
    question = {
        "key": key,
        "label": label,
        "kind": kind,
        "required": bool(raw.get("required")),
        "choices": _choices(raw.get("choices")) if kind in CHOICE_KINDS else [],
        "sensitive": bool(raw.get("sensitive")),
        "consent": str(raw.get("consent") or "") if kind == QuestionKind.CONSENT else "",
        "help": str(raw.get("help") or "").strip()[:300],
    }
    if kind in CHOICE_KINDS and not question["choices"]:
        raise QuestionProblem(_("「%(label)s」の選択肢を1つ以上入力してください。", label=label))
    if question["consent"] and question["consent"] not in CONSENT_KINDS:
        raise QuestionProblem(_("「%(label)s」の同意の種類が正しくありません。", label=label))
    question["field_id"] = _field(dict(raw, **question), label)
    question["tags"] = _tags(dict(raw, **question), label)
    question["visit"] = bool(raw.get("visit")) and kind == QuestionKind.DATE
    if question["sensitive"] and (question["field_id"] or question["tags"] or question["visit"]):
        raise QuestionProblem(
            _("「%(label)s」は要配慮個人情報のため、友だち項目・タグ・来院履歴には書き込めません。", label=label)
        )
    return question


def clean(raw_questions: list[dict], previous: list[dict] | None = None) -> list[dict]:
    """The checked definition; keys of kept questions stay (answers already sent refer to them)."""
    questions = [q for q in raw_questions if str(q.get("label") or "").strip()]
    if not questions:
        raise QuestionProblem(_("質問を1つ以上入力してください。"))
    if len(questions) > MAX_QUESTIONS:
        raise QuestionProblem(_("質問は%(n)s問までです。", n=MAX_QUESTIONS))
    taken = {str(q.get("key")) for q in [*(previous or []), *questions] if q.get("key")}
    cleaned: list[dict] = []
    for raw in questions:
        key = str(raw.get("key") or "")[:40]
        if not KEY.match(key) or key in {q["key"] for q in cleaned}:
            key = _free_key(taken)
        cleaned.append(_one(raw, key))
    return cleaned


def _free_key(taken: set[str]) -> str:
    number = 1
    while f"q{number}" in taken:
        number += 1
    taken.add(f"q{number}")
    return f"q{number}"


# --- answers ----------------------------------------------------------------------------------


def _answer(question: dict, form: Mapping) -> tuple[object, str]:
    name, kind = f"q_{question['key']}", question["kind"]
    if kind == QuestionKind.MULTI_CHOICE:
        chosen = [v for v in form.getlist(name) if v in question["choices"]]
        return chosen, ""
    if kind == QuestionKind.CONSENT:
        return form.get(name) == "yes", ""
    text = str(form.get(name) or "").strip()[:MAX_TEXT]
    if not text:
        return "", ""
    if kind == QuestionKind.CHOICE and text not in question["choices"]:
        return "", _("選択肢から選んでください。")
    if kind == QuestionKind.NUMBER:
        try:
            float(text.replace(",", ""))
        except ValueError:
            return text, _("数字で入力してください。")
    if kind == QuestionKind.DATE:
        try:
            text = date.fromisoformat(text.replace("/", "-")).isoformat()
        except ValueError:
            return text, _("日付を選んでください。")
    return text, ""


def read_answers(questions: list[dict], form: Mapping) -> tuple[dict, dict[str, str]]:
    """A patient's submitted answers by question key, and an error per question that has one."""
    values, errors = {}, {}
    for question in questions:
        value, error = _answer(question, form)
        if not error and question["required"] and value in ("", [], False):
            error = _("この項目は必須です。") if question["kind"] != QuestionKind.CONSENT else _("同意が必要です。")
        values[question["key"]] = value
        if error:
            errors[question["key"]] = error
    return values, errors


def shown(question: dict, value) -> str:
    """An answer as staff read it."""
    if question["kind"] == QuestionKind.CONSENT:
        return _("同意する") if value else _("同意しない")
    if isinstance(value, list):
        return "、".join(value)
    return "" if value is None else str(value)
