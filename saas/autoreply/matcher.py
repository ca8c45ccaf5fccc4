"""Which rule answers a message: one Aho-Corasick pass over the normalised text.

Per clinic, every keyword of every rule (and of the subscribed library FAQ items) goes
into one automaton. A message costs one scan of its own length plus the hits, whatever
the number of rules. Exact keywords are a dictionary lookup. Regex rules are the
exception: each with a ``required_literal`` runs only when that literal was found by the
scan; regex rules without one run on every message, so the editor limits them to
:data:`MAX_UNGUARDED_REGEX_RULES` per clinic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import time

import ahocorasick
import sqlalchemy as sa

from saas.autoreply.cache import LIBRARY_KEY, clinic_key, current_stamp
from saas.autoreply.models import AutoReplyRule, MatchType
from saas.autoreply.normalize import normalize
from saas.extensions import db

MAX_UNGUARDED_REGEX_RULES = 10
LIBRARY_PRIORITY = 10  # library FAQ answers lose to the clinic's own rules by default


@dataclass
class Entry:
    """A rule or a library FAQ item, reduced to what matching and answering need."""

    source: str  # "rule:<id>" or "library:<set key>/<item key>"
    name: str
    priority: int
    messages: list[dict] = field(default_factory=list)
    computed: str = ""
    active_from: str = ""
    active_until: str = ""
    order: int = 0

    def active_at(self, clock: time | None) -> bool:
        if clock is None or not (self.active_from or self.active_until):
            return True
        now = clock.strftime("%H:%M")
        start, end = self.active_from or "00:00", self.active_until or "24:00"
        return start <= now < end if start <= end else (now >= start or now < end)


@dataclass
class CompiledRules:
    entries: list[Entry]
    automaton: ahocorasick.Automaton | None
    exact: dict[str, list[int]]
    guarded_regex: dict[str, list[tuple[re.Pattern, int]]]  # literal → patterns
    unguarded_regex: list[tuple[re.Pattern, int]]

    def candidates(self, text: str) -> list[tuple[int, int]]:
        """(entry index, matched length) for every entry whose keywords hit ``text``."""
        found: list[tuple[int, int]] = [(i, len(text)) for i in self.exact.get(text, [])]
        literals: set[str] = set()
        if self.automaton is not None and text:
            for _, (keyword, indexes) in self.automaton.iter(text):
                if keyword in self.guarded_regex:
                    literals.add(keyword)
                found.extend((i, len(keyword)) for i in indexes)
        regexes = [p for lit in literals for p in self.guarded_regex[lit]] + self.unguarded_regex
        found.extend((i, len(m.group(0))) for pattern, i in regexes if (m := pattern.search(text)))
        return found


@dataclass
class Match:
    entry: Entry
    normalized_text: str


_cache: dict[int, tuple[tuple[str, str], CompiledRules]] = {}


def compile_entries(entries: list[Entry], keywords: list[tuple[str, list[str], str]]) -> CompiledRules:
    """Build the automaton from (match type, keywords, required literal) per entry."""
    contains: dict[str, list[int]] = {}
    exact: dict[str, list[int]] = {}
    guarded: dict[str, list[tuple[re.Pattern, int]]] = {}
    unguarded: list[tuple[re.Pattern, int]] = []
    for index, (match_type, words, literal) in enumerate(keywords):
        if match_type == MatchType.REGEX:
            patterns = [re.compile(w) for w in words if w]
            literal = normalize(literal)
            for pattern in patterns:
                (guarded.setdefault(literal, []) if literal else unguarded).append((pattern, index))
            continue
        target = exact if match_type == MatchType.EXACT else contains
        for word in {normalize(w) for w in words if normalize(w)}:
            target.setdefault(word, []).append(index)
    automaton = build_automaton(contains, guarded)
    return CompiledRules(entries, automaton, exact, guarded, unguarded)


def build_automaton(contains: dict[str, list], guarded: dict | None = None) -> ahocorasick.Automaton | None:
    """One Aho-Corasick automaton over the words; each hit yields (end index, (word, its values))."""
    guarded = guarded or {}
    words = {**{literal: [] for literal in guarded}, **contains}
    if not words:
        return None
    automaton = ahocorasick.Automaton()
    for word, indexes in words.items():
        automaton.add_word(word, (word, indexes))
    automaton.make_automaton()
    return automaton


def _load(clinic) -> CompiledRules:
    from saas.library.services import faq_items_for_answering

    entries: list[Entry] = []
    keywords: list[tuple[str, list[str], str]] = []
    rules = db.session.scalars(
        sa.select(AutoReplyRule).where(AutoReplyRule.clinic_id == clinic.id, AutoReplyRule.enabled.is_(True))
    )
    for rule in rules:
        entries.append(
            Entry(f"rule:{rule.id}", rule.name, rule.priority, list(rule.messages or []), rule.computed,
                  rule.active_from, rule.active_until, order=len(entries))
        )  # fmt: skip
        keywords.append((rule.match_type, list(rule.keywords or []), rule.required_literal))
    for item in faq_items_for_answering(clinic):
        messages = [{"type": "text", "text": item.body}] if item.body else []
        source = f"library:{item.library_set.key}/{item.item_key}"
        entries.append(Entry(source, item.title, LIBRARY_PRIORITY, messages, item.computed, order=len(entries)))
        keywords.append((MatchType.CONTAINS, item.keywords, ""))
    return compile_entries(entries, keywords)


def compiled_for(clinic) -> CompiledRules:
    """The clinic's compiled rules, recompiled only when a stamp changed."""
    stamps = (current_stamp(clinic_key(clinic.id)), current_stamp(LIBRARY_KEY))
    cached = _cache.get(clinic.id)
    if cached is not None and cached[0] == stamps:
        return cached[1]
    compiled = _load(clinic)
    _cache[clinic.id] = (stamps, compiled)
    return compiled


def best_entry(compiled: CompiledRules, text: str, clock: time | None = None) -> Entry | None:
    """Highest priority wins; then the longest keyword; then the earliest rule."""
    best = None
    for index, length in compiled.candidates(text):
        entry = compiled.entries[index]
        if not entry.active_at(clock):
            continue
        rank = (entry.priority, length, -entry.order)
        if best is None or rank > best[0]:
            best = (rank, entry)
    return best[1] if best else None


def find_match(clinic, message: str, clock: time | None = None, compiled: CompiledRules | None = None) -> Match | None:
    """The entry that answers ``message`` at ``clock`` (clinic local time), or None; ``compiled``:
    the clinic's rules as already read (a batch of events), else checked against the stamps."""
    text = normalize(message)
    entry = best_entry(compiled or compiled_for(clinic), text, clock)
    return Match(entry, text) if entry else None
