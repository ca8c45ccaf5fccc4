"""Forms: storing a definition, taking a patient's answers and writing what they map to,
listing answers for staff and the answers CSV.

An answer is stored whole (encrypted), then each question's effect is applied: its friend
field, a tag per chosen option, a consent, a visit. A sensitive question has none.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.common import to_local
from saas.extensions import db
from saas.fields import services as fields
from saas.fields.models import FriendField
from saas.forms import questions as question_rules
from saas.forms.models import Form, FormAnswer, FormPurpose, QuestionKind
from saas.friends import consent
from saas.friends import services as friends
from saas.friends.models import Friend, Tag
from saas.security.csvsafe import safe_writer
from saas.visits import services as visits
from saas.visits.models import VisitSource


class FormProblem(ValueError):
    """A form definition that cannot be stored; the message is for staff."""


def all_forms() -> list[Form]:
    return list(db.session.scalars(sa.select(Form).order_by(Form.id)))


def get_by_token(token: str) -> Form | None:
    """The current clinic's form of this link token, if it is open."""
    return db.session.scalar(sa.select(Form).where(Form.token == token, Form.active.is_(True)))


def save_form(
    form: Form,
    *,
    name: str,
    purpose: str,
    description: str,
    thanks: str,
    questions: list[dict],
    scenario_id: int | None = None,
) -> Form:
    """Check and store a form's definition (the caller commits)."""
    name = (name or "").strip()
    if not name or len(name) > 80:
        raise FormProblem(_("フォーム名を入力してください（80文字以内）。"))
    clash = sa.select(Form.id).where(Form.name == name, Form.id != (form.id or 0))
    if db.session.scalar(clash) is not None:
        raise FormProblem(_("同じ名前のフォームがすでにあります。"))
    try:
        cleaned = question_rules.clean(questions, form.questions)
    except question_rules.QuestionProblem as problem:
        raise FormProblem(str(problem)) from problem
    form.name, form.questions = name, cleaned
    form.purpose = purpose if purpose in tuple(FormPurpose) else FormPurpose.OTHER
    form.description, form.thanks = (description or "").strip()[:2000], (thanks or "").strip()[:500]
    form.scenario_id = scenario_id
    db.session.add(form)
    db.session.flush()
    return form


# --- answering --------------------------------------------------------------------------------


def friend_for(line_user_id: str) -> Friend | None:
    """The clinic's following friend of this LINE user (answers write to a friend)."""
    friend = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == line_user_id))
    return friend if friend is not None and friend.is_following else None


def submit(form: Form, friend: Friend, values: dict) -> FormAnswer:
    """Store the answers and apply each question's effect (the caller commits)."""
    answer = FormAnswer(clinic_id=friend.clinic_id, form_id=form.id, friend_id=friend.id)
    answer.values = values
    db.session.add(answer)
    db.session.flush()
    for question in form.questions:
        value = values.get(question["key"])
        if not question.get("sensitive") and value not in (None, "", []):
            _apply(form, friend, question, value)
    return answer


def _apply(form: Form, friend: Friend, question: dict, value) -> None:
    field = db.session.get(FriendField, question["field_id"]) if question.get("field_id") else None
    if field is not None:
        with contextlib.suppress(fields.FieldProblem):  # the field changed since: the answer itself is kept
            fields.set_value(friend, field, value)
    chosen = value if isinstance(value, list) else [value]
    tag_ids = [question["tags"][c] for c in chosen if isinstance(c, str) and c in (question.get("tags") or {})]
    for tag in db.session.scalars(sa.select(Tag).where(Tag.id.in_(tag_ids))):
        friends.add_tag(friend, tag)
    if question["kind"] == QuestionKind.CONSENT and question.get("consent"):
        _consent(form, friend, question["consent"], bool(value))
    if question.get("visit") and isinstance(value, str):
        visits.record(friend.id, friend.clinic_id, fields.parse_date(value), VisitSource.FORM)


def _consent(form: Form, friend: Friend, kind: str, value: bool) -> None:
    if consent.granted(friend, kind) != value or not consent.has_answered(friend, kind):
        consent.change(friend, kind, value, by="patient", reason=f"フォーム「{form.name}」")


# --- staff views --------------------------------------------------------------------------------


def answer_counts() -> dict[int, int]:
    rows = db.session.execute(sa.select(FormAnswer.form_id, sa.func.count(FormAnswer.id)).group_by(FormAnswer.form_id))
    return dict(rows.all())


@dataclass
class AnswerRow:
    answer: FormAnswer
    friend: Friend | None
    cells: list[str]


def visible_questions(form: Form, *, sensitive: bool) -> list[dict]:
    return [q for q in form.questions if sensitive or not q.get("sensitive")]


def answer_rows(form: Form, *, sensitive: bool, limit: int = 200) -> list[AnswerRow]:
    """The newest answers of a form with the friend and the shown questions' answers."""
    answers = list(
        db.session.scalars(
            sa.select(FormAnswer).where(FormAnswer.form_id == form.id).order_by(FormAnswer.id.desc()).limit(limit)
        )
    )
    people = {
        f.id: f for f in db.session.scalars(sa.select(Friend).where(Friend.id.in_({a.friend_id for a in answers})))
    }
    shown = visible_questions(form, sensitive=sensitive)
    return [
        AnswerRow(a, people.get(a.friend_id), [question_rules.shown(q, a.values.get(q["key"])) for q in shown])
        for a in answers
    ]


def friend_answers(friend: Friend) -> list[tuple[FormAnswer, Form]]:
    """The forms a friend answered, newest first (for the friend page: names and dates only)."""
    rows = db.session.execute(
        sa.select(FormAnswer, Form)
        .join(Form, Form.id == FormAnswer.form_id)
        .where(FormAnswer.friend_id == friend.id)
        .order_by(FormAnswer.id.desc())
        .limit(20)
    )
    return [(answer, form) for answer, form in rows]


def answers_csv(form: Form, *, sensitive: bool) -> tuple[str, int]:
    """The form's answers as CSV (sensitive questions only when asked), and the row count."""
    shown = visible_questions(form, sensitive=sensitive)
    out = io.StringIO()
    writer = safe_writer(out)
    writer.writerow(["回答ID", "回答日時", "友だちID", "表示名", *[q["label"] for q in shown]])
    count, last = 0, 0
    while batch := _answer_batch(form.id, after=last):
        names = dict(
            db.session.execute(
                sa.select(Friend.id, Friend.display_name).where(Friend.id.in_({a.friend_id for a in batch}))
            ).all()
        )
        for answer in batch:
            values = answer.values
            when = to_local(answer.submitted_at).strftime("%Y-%m-%d %H:%M")
            cells = [question_rules.shown(q, values.get(q["key"])) for q in shown]
            writer.writerow([answer.id, when, answer.friend_id, names.get(answer.friend_id, ""), *cells])
        count, last = count + len(batch), batch[-1].id
    return out.getvalue(), count


def _answer_batch(form_id: int, *, after: int, size: int = 1000) -> list[FormAnswer]:
    query = sa.select(FormAnswer).where(FormAnswer.form_id == form_id, FormAnswer.id > after)
    return list(db.session.scalars(query.order_by(FormAnswer.id).limit(size)))
