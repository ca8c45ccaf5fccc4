"""The conversation: answer a text, greet a new friend, hand off to staff and back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Session

from saas.autoreply import emergency
from saas.autoreply.answers import TemplateValues, computed_text
from saas.autoreply.matcher import CompiledRules, Entry, compiled_for, find_match
from saas.autoreply.models import AutoReplySettings, ConversationState
from saas.autoreply.normalize import normalize
from saas.common import clinic_row, utcnow
from saas.extensions import db
from saas.library.render import render_messages
from saas.schedule import services as schedule

DEFAULT_HANDOFF_PHRASES = ["スタッフと話したい", "スタッフに相談", "有人対応"]
DEFAULT_HANDOFF_REPLY = "スタッフにおつなぎします。順番にお返事しますので、このままメッセージをお送りください。"
MAX_MESSAGES = 5  # LINE accepts at most five message objects per reply


@dataclass
class Reply:
    """What the bot would answer and why (shown in the portal's test box)."""

    kind: str  # "emergency", "rule", "handoff", "fallback", "paused", "none"
    messages: list[dict]
    entry: Entry | None = None


_BATCH = "autoreply_batch"  # session.info, for a batch of webhook events: what prepare_batch read


@dataclass
class _Batch:
    clinic_id: int
    settings: AutoReplySettings
    compiled: CompiledRules
    states: dict[str, ConversationState | None]  # by LINE user id; None: no state row yet


def prepare_batch(clinic, line_user_ids: list[str]) -> None:
    """Read the settings, the compiled rules and these friends' conversation states once for the
    batch of webhook events being answered; kept until the session's transaction ends."""
    states: dict[str, ConversationState | None] = dict.fromkeys(line_user_ids)
    found = sa.select(ConversationState).where(
        ConversationState.clinic_id == clinic.id, ConversationState.line_user_id.in_(line_user_ids)
    )
    for state in db.session.scalars(found):
        states[state.line_user_id] = state
    settings, compiled = get_settings(clinic.id), compiled_for(clinic)
    db.session.info[_BATCH] = _Batch(clinic.id, settings, compiled, states)


def _batch(clinic_id: int) -> _Batch | None:
    batch = db.session.info.get(_BATCH)
    return batch if batch is not None and batch.clinic_id == clinic_id else None


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _end_batch(session: Session, *args) -> None:
    session.info.pop(_BATCH, None)


def get_settings(clinic_id: int) -> AutoReplySettings:
    """The clinic's auto-reply settings, created with defaults on first use."""
    batch = _batch(clinic_id)
    if batch is not None:
        return batch.settings
    return clinic_row(
        AutoReplySettings,
        clinic_id,
        greeting_messages=[],
        fallback_messages=[],
        handoff_phrases=list(DEFAULT_HANDOFF_PHRASES),
        handoff_reply=DEFAULT_HANDOFF_REPLY,
        greeting_shows_closures=True,
        handoff_resume_hours=0,
    )


def get_state(clinic_id: int, line_user_id: str) -> ConversationState | None:
    batch = _batch(clinic_id)
    if batch is not None and line_user_id in batch.states:
        return batch.states[line_user_id]
    return db.session.scalars(
        sa.select(ConversationState).where(
            ConversationState.clinic_id == clinic_id, ConversationState.line_user_id == line_user_id
        )
    ).first()


def is_bot_paused(clinic_id: int, line_user_id: str, resume_hours: int = 0) -> bool:
    """Whether staff hold this conversation (an expired pause resumes the bot)."""
    state = get_state(clinic_id, line_user_id)
    if state is None or not state.bot_paused:
        return False
    if resume_hours and state.paused_at and utcnow() - state.paused_at > timedelta(hours=resume_hours):
        state.bot_paused = False
        return False
    return True


def pause_bot(clinic_id: int, line_user_id: str) -> ConversationState:
    """Hand the conversation to staff: the bot stays silent for this friend."""
    state = get_state(clinic_id, line_user_id) or ConversationState(clinic_id=clinic_id, line_user_id=line_user_id)
    state.bot_paused, state.paused_at, state.handed_off_at = True, utcnow(), utcnow()
    return _kept(state)


def _kept(state: ConversationState) -> ConversationState:
    db.session.add(state)
    db.session.flush()
    batch = _batch(state.clinic_id)
    if batch is not None:
        batch.states[state.line_user_id] = state
    return state


def resume_bot(clinic_id: int, line_user_id: str) -> ConversationState | None:
    """Staff are done: the bot answers this friend again (and an urgent flag is cleared).
    None when the clinic has no such conversation."""
    state = get_state(clinic_id, line_user_id)
    if state is not None:
        state.bot_paused, state.urgent_at = False, None
    return state


def flag_urgent(clinic_id: int, line_user_id: str) -> ConversationState:
    """Staff must look at this conversation first: the patient described an emergency."""
    state = get_state(clinic_id, line_user_id) or ConversationState(clinic_id=clinic_id, line_user_id=line_user_id)
    state.urgent_at = utcnow()
    return _kept(state)


def paused_conversations(clinic_id: int) -> list[ConversationState]:
    return list(
        db.session.scalars(
            sa.select(ConversationState)
            .where(ConversationState.clinic_id == clinic_id, ConversationState.bot_paused.is_(True))
            .order_by(ConversationState.paused_at.desc())
        )
    )


def wants_human(settings: AutoReplySettings, text: str) -> bool:
    normalized = normalize(text)
    return any(phrase and normalize(phrase) in normalized for phrase in settings.handoff_phrases or [])


def entry_messages(entry: Entry, clinic, friend=None, now: datetime | None = None) -> list[dict]:
    """The LINE messages an entry answers with, variables filled in."""
    values = TemplateValues(clinic, friend, now)
    messages = render_messages(entry.messages, values)
    if entry.computed:
        messages.append({"type": "text", "text": computed_text(entry.computed, clinic, values.now)})
    return messages[:MAX_MESSAGES]


def reply_to(clinic, text: str, friend=None, now: datetime | None = None, *, dry_run: bool = False) -> Reply:
    """Decide the bot's answer to ``text``. With ``dry_run`` nothing is recorded (the test box)."""
    now = now or schedule.clinic_now(clinic)
    settings = get_settings(clinic.id)
    user_id = getattr(friend, "line_user_id", None)
    if emergency.is_emergency(settings, text):  # answered even while staff hold the chat
        if user_id and not dry_run:
            flag_urgent(clinic.id, user_id)
        return Reply("emergency", [{"type": "text", "text": emergency.emergency_reply(clinic)}])
    if user_id and is_bot_paused(clinic.id, user_id, settings.handoff_resume_hours):
        return Reply("paused", [])
    if wants_human(settings, text):
        if user_id and not dry_run:
            pause_bot(clinic.id, user_id)
        reply = settings.handoff_reply or DEFAULT_HANDOFF_REPLY
        return Reply("handoff", render_messages([{"type": "text", "text": reply}], TemplateValues(clinic, friend, now)))
    batch = _batch(clinic.id)
    match = find_match(clinic, text, now.time(), batch.compiled if batch is not None else None)
    if match is not None:
        return Reply("rule", entry_messages(match.entry, clinic, friend, now), match.entry)
    if settings.fallback_messages:
        return Reply("fallback", render_messages(settings.fallback_messages, TemplateValues(clinic, friend, now)))
    return Reply("none", [])


def greeting(clinic, friend=None, now: datetime | None = None) -> list[dict]:
    """挨拶メッセージ, followed by today's closures and upcoming ones when the clinic wants it."""
    settings = get_settings(clinic.id)
    values = TemplateValues(clinic, friend, now)
    messages = render_messages(settings.greeting_messages or [], values)
    if settings.greeting_shows_closures and schedule.upcoming_closures(clinic, values.now.date(), days=14):
        messages.append({"type": "text", "text": values["schedule.closures"]})
    return messages[:MAX_MESSAGES]
