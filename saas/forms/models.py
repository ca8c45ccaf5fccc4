"""A clinic's forms (questions as data) and the answers patients sent.

A question is a dict in ``Form.questions``::

    {"key": "q1", "label": "ご希望のワクチン", "kind": "choice", "required": true,
     "choices": ["インフルエンザ", "新型コロナ"], "field_id": 4, "visit": false,
     "tags": {"インフルエンザ": 7}, "consent": "", "sensitive": false}

``field_id`` copies the answer to a friend field, ``visit`` records a date answer as a visit,
``tags`` adds a tag per chosen option, ``consent`` (``marketing`` / ``reminders``) makes a
``consent`` question set that consent. Sensitive questions (要配慮個人情報: 既往歴, 服薬 …)
write nothing outside the answer, which is stored encrypted as a whole.
"""

from __future__ import annotations

import enum
import json
import secrets
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import BigId, Timestamped, utcnow
from saas.crypto import EncryptedText
from saas.extensions import db
from saas.privacy.coverage import DELETE, patient_table
from saas.tenancy.scoping import TenantOwned


class QuestionKind(enum.StrEnum):
    TEXT = "text"
    NUMBER = "number"
    DATE = "date"
    CHOICE = "choice"
    MULTI_CHOICE = "multi_choice"
    CONSENT = "consent"  # one checkbox: 同意する


class FormPurpose(enum.StrEnum):
    INTAKE = "intake"  # 問診票 (before a visit)
    SURVEY = "survey"  # アンケート (after a visit)
    VACCINATION = "vaccination"  # 予防接種の希望
    OTHER = "other"


def new_token() -> str:
    return secrets.token_urlsafe(12)


class Form(TenantOwned, Timestamped, db.Model):
    __table_args__ = (sa.UniqueConstraint("clinic_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(80))
    purpose: Mapped[str] = mapped_column(sa.String(16), default=FormPurpose.OTHER)
    description: Mapped[str] = mapped_column(sa.Text, default="")
    thanks: Mapped[str] = mapped_column(sa.String(500), default="")
    token: Mapped[str] = mapped_column(sa.String(32), unique=True, default=new_token)
    questions: Mapped[list] = mapped_column(sa.JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    # A step scenario (saas/steps) started for the friend who answers; None = none.
    scenario_id: Mapped[int | None] = mapped_column()


class FormAnswer(TenantOwned, db.Model):
    """One patient's answers to one form, sent at one time (every answer encrypted at rest)."""

    __table_args__ = (
        sa.Index("ix_form_answer_form", "clinic_id", "form_id", "id"),
        sa.Index("ix_form_answer_friend", "clinic_id", "friend_id", "form_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    form_id: Mapped[int] = mapped_column(sa.ForeignKey("form.id", ondelete="CASCADE"))
    friend_id: Mapped[int] = mapped_column(sa.ForeignKey("friend.id", ondelete="CASCADE"))
    # JSON of {question key: value} as a Fernet token; values are text or lists of text.
    content: Mapped[str] = mapped_column(EncryptedText)
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def values(self) -> dict:
        return json.loads(self.content or "{}")

    @values.setter
    def values(self, answers: dict) -> None:
        self.content = json.dumps(answers, ensure_ascii=False)


patient_table("form_answer", keys=("friend_id",), erase=DELETE, section="form_answers")
