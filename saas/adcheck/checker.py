"""Checking text against the rules: one Aho-Corasick scan of the normalised text.

Every phrase of every rule (its ``allow`` exceptions, the two word lists of a ``near`` rule and
the notes a ``requires`` rule looks for) goes into one automaton (saas.autoreply.matcher), so a
text costs one pass over its own length plus the hits, however many rules an organization adds.
Matching runs on the FAQ normaliser's form (NFKC, hiragana→katakana, case, spaces), and each hit
is mapped back to the characters staff typed, so the portal can highlight it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from saas.adcheck.rules import Rule
from saas.autoreply.matcher import build_automaton
from saas.autoreply.normalize import normalize, normalize_with_offsets

PHRASE, ALLOW, FIRST, SECOND, NOTE = "phrase", "allow", "first", "second", "note"


@dataclass(frozen=True)
class Finding:
    """One rule's hit: where in the original text (code points), what it says and how serious."""

    rule_id: str
    severity: str
    title: str
    source: str
    explanation: str
    start: int
    end: int
    phrase: str
    missing: tuple[str, ...] = ()  # required notes not written (before/after, unapproved drugs)
    field: str = ""  # which text of a form or message set ("m0_text", "messages[1]")

    def as_dict(self) -> dict:
        return {
            "rule_id": self.rule_id, "severity": self.severity, "title": self.title, "source": self.source,
            "explanation": self.explanation, "start": self.start, "end": self.end, "phrase": self.phrase,
            "missing": list(self.missing), "field": self.field,
        }  # fmt: skip


@dataclass(frozen=True)
class Hit:
    start: int  # in the normalised text, end exclusive
    end: int


@dataclass
class _RuleHits:
    phrase: list[Hit] = field(default_factory=list)
    allow: list[Hit] = field(default_factory=list)
    first: list[Hit] = field(default_factory=list)
    second: list[Hit] = field(default_factory=list)
    notes: set[str] = field(default_factory=set)


class CompiledRuleSet:
    """Rules compiled into one automaton; build once per rule set, check many texts."""

    def __init__(self, rules: tuple[Rule, ...]):
        self.rules = rules
        words: dict[str, list[tuple[int, str, str]]] = defaultdict(list)
        for index, rule in enumerate(rules):
            for kind, phrases in _words_of(rule):
                for phrase, label in phrases:
                    if word := normalize(phrase):
                        words[word].append((index, kind, label))
        self.automaton = build_automaton(dict(words))

    def _hits(self, normalised: str) -> dict[int, _RuleHits]:
        found: dict[int, _RuleHits] = defaultdict(_RuleHits)
        if self.automaton is None or not normalised:
            return found
        for last, (word, entries) in self.automaton.iter(normalised):
            hit = Hit(last + 1 - len(word), last + 1)
            for index, kind, label in entries:
                if kind == NOTE:
                    found[index].notes.add(label)
                else:
                    getattr(found[index], kind).append(hit)
        return found

    def check(self, text: str, *, context: str | None = None, field_name: str = "") -> list[Finding]:
        """The findings in ``text``; required notes may be written anywhere in ``context`` (default: text)."""
        normalised, starts, ends = normalize_with_offsets(text)
        hits = self._hits(normalised)
        notes = hits if context is None else self._hits(normalize(context))
        findings = []
        for index, rule_hits in hits.items():
            rule = self.rules[index]
            spans = _spans(rule, rule_hits)
            missing = _missing_notes(rule, notes.get(index))
            if rule.requires and not missing:
                continue
            for span in spans:
                start, end = starts[span.start], ends[span.end - 1]
                findings.append(
                    Finding(rule.id, rule.severity, rule.title, rule.source, rule.explanation,
                            start, end, text[start:end], missing, field_name)
                )  # fmt: skip
        return sorted(findings, key=lambda f: (f.start, f.rule_id))


def _words_of(rule: Rule):
    yield PHRASE, [(p, "") for p in rule.phrases]
    yield ALLOW, [(p, "") for p in rule.allow]
    if rule.near is not None:
        yield FIRST, [(p, "") for p in rule.near.first]
        yield SECOND, [(p, "") for p in rule.near.second]
    for note in rule.requires:
        yield NOTE, [(p, note.label) for p in note.any]


def _inside(hit: Hit, others: list[Hit]) -> bool:
    return any(o.start <= hit.start and hit.end <= o.end and o != hit for o in others)


def _spans(rule: Rule, hits: _RuleHits) -> list[Hit]:
    """The rule's hits to report: not inside an allowed phrase, not inside a longer hit of the rule."""
    found = [h for h in hits.phrase if not _inside_allowed(h, hits.allow)]
    if rule.near is not None:
        found += _near_pairs(hits.first, hits.second, rule.near.within)
    unique = list(dict.fromkeys(found))
    return [h for h in unique if not _inside(h, unique)]


def _inside_allowed(hit: Hit, allowed: list[Hit]) -> bool:
    return any(a.start <= hit.start and hit.end <= a.end for a in allowed)


def _near_pairs(first: list[Hit], second: list[Hit], within: int) -> list[Hit]:
    pairs = []
    for a in first:
        for b in second:
            gap = max(a.start, b.start) - min(a.end, b.end)
            if gap <= within and not (a.start <= b.start and b.end <= a.end):
                pairs.append(Hit(min(a.start, b.start), max(a.end, b.end)))
    return pairs


def _missing_notes(rule: Rule, hits: _RuleHits | None) -> tuple[str, ...]:
    written = hits.notes if hits is not None else set()
    return tuple(note.label for note in rule.requires if note.label not in written)
