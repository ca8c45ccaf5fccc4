"""Canned replies for the composer: the clinic's auto-reply rules and subscribed FAQ library items."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from saas.autoreply.matcher import LIBRARY_PRIORITY, Entry
from saas.autoreply.models import AutoReplyRule
from saas.autoreply.services import entry_messages
from saas.extensions import db
from saas.library.services import faq_items_for_answering

MAX_CANNED = 100


@dataclass(frozen=True)
class CannedReply:
    title: str
    text: str
    source: str  # "rule" or "library"


def _texts(messages: list[dict]) -> str:
    return "\n\n".join(m.get("text", "") for m in messages if m.get("type") == "text" and m.get("text"))


def canned_replies(clinic, friend=None) -> list[CannedReply]:
    """Texts staff can insert into the composer, variables filled in for this friend."""
    entries: list[tuple[Entry, str]] = []
    rules = db.session.scalars(
        sa.select(AutoReplyRule)
        .where(AutoReplyRule.clinic_id == clinic.id, AutoReplyRule.enabled.is_(True))
        .order_by(AutoReplyRule.priority.desc(), AutoReplyRule.name)
    )
    for rule in rules:
        entries.append(
            (Entry(f"rule:{rule.id}", rule.name, rule.priority, list(rule.messages or []), rule.computed), "rule")
        )
    for item in faq_items_for_answering(clinic):
        messages = [{"type": "text", "text": item.body}] if item.body else []
        entries.append((Entry(item.item_key, item.title, LIBRARY_PRIORITY, messages, item.computed), "library"))
    found = []
    for entry, source in entries[:MAX_CANNED]:
        text = _texts(entry_messages(entry, clinic, friend))
        if text:
            found.append(CannedReply(entry.name, text, source))
    return found
