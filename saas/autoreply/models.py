"""Auto-reply rules, the clinic's conversation settings and per-friend bot state."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


class MatchType(enum.StrEnum):
    EXACT = "exact"  # the whole message equals a keyword
    CONTAINS = "contains"  # a keyword appears in the message
    REGEX = "regex"  # a pattern matches (kept few: see saas/autoreply/matcher.py)


class Computed(enum.StrEnum):
    TODAY_HOURS = "today_hours"
    WEEKLY_HOURS = "weekly_hours"
    NEXT_OPEN_DAY = "next_open_day"
    CLOSURES = "closures"
    ACCESS = "access"
    PARKING = "parking"
    PHONE = "phone"


COMPUTED_LABELS = {
    Computed.TODAY_HOURS: _l("今日の診療時間"),
    Computed.WEEKLY_HOURS: _l("週間の診療時間"),
    Computed.NEXT_OPEN_DAY: _l("次の診療日"),
    Computed.CLOSURES: _l("休診・代診のお知らせ"),
    Computed.ACCESS: _l("アクセス（住所・道順）"),
    Computed.PARKING: _l("駐車場"),
    Computed.PHONE: _l("電話番号"),
}


class AutoReplyRule(TenantOwned, Timestamped, db.Model):
    """Keywords → an answer. The highest priority among matching rules answers."""

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    match_type: Mapped[str] = mapped_column(sa.String(16), default=MatchType.CONTAINS)
    keywords: Mapped[list] = mapped_column(sa.JSON, default=list)
    # For regex rules: a literal every match contains; the regex runs only when it is present.
    required_literal: Mapped[str] = mapped_column(sa.String(100), default="")
    priority: Mapped[int] = mapped_column(default=100)
    enabled: Mapped[bool] = mapped_column(default=True)
    active_from: Mapped[str] = mapped_column(sa.String(5), default="")  # "HH:MM"; "" = always
    active_until: Mapped[str] = mapped_column(sa.String(5), default="")
    messages: Mapped[list] = mapped_column(sa.JSON, default=list)  # LINE message objects
    computed: Mapped[str] = mapped_column(sa.String(32), default="")  # a Computed answer, or ""


class AutoReplySettings(TenantOwned, Timestamped, db.Model):
    """Greeting, fallback and hand-off for one clinic."""

    __table_args__ = (sa.UniqueConstraint("clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    greeting_messages: Mapped[list] = mapped_column(sa.JSON, default=list)
    greeting_shows_closures: Mapped[bool] = mapped_column(default=True)
    fallback_messages: Mapped[list] = mapped_column(sa.JSON, default=list)
    handoff_phrases: Mapped[list] = mapped_column(sa.JSON, default=list)
    handoff_reply: Mapped[str] = mapped_column(sa.Text, default="")
    handoff_resume_hours: Mapped[int] = mapped_column(default=0)  # 0: stays paused until staff resume
    emergency_keywords: Mapped[list | None] = mapped_column(sa.JSON)  # None: the shipped default list


class ConversationState(TenantOwned, Timestamped, db.Model):
    """Whether the bot answers one friend (paused while staff handle the conversation)."""

    __table_args__ = (
        sa.UniqueConstraint("clinic_id", "line_user_id"),
        # The inbox list's emergency ranks: the few friends with an unresolved emergency.
        sa.Index(
            "ix_conversation_state_urgent",
            "clinic_id",
            postgresql_where=sa.text("urgent_at IS NOT NULL"),
            sqlite_where=sa.text("urgent_at IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    line_user_id: Mapped[str] = mapped_column(sa.String(64))
    bot_paused: Mapped[bool] = mapped_column(default=False)
    paused_at: Mapped[datetime | None] = mapped_column()
    handed_off_at: Mapped[datetime | None] = mapped_column()
    urgent_at: Mapped[datetime | None] = mapped_column()  # an emergency symptom staff have not resolved yet
