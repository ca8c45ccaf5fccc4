"""The shipped rule set (rules.yaml) as typed rules, and an organization's overrides applied to it."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

RULES_FILE = Path(__file__).with_name("rules.yaml")


class Severity(enum.StrEnum):
    WARNING = "warning"  # shown; the sender acknowledges it before sending
    BLOCK = "block"  # nothing is sent before an admin approves


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NearSpec(_Strict):
    first: list[str] = Field(min_length=1)
    second: list[str] = Field(min_length=1)
    within: int = Field(15, ge=0, le=200)


class RequiredNote(_Strict):
    label: str
    any: list[str] = Field(min_length=1)


class RuleSpec(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_]{0,39}$")
    title: str
    source: str
    severity: Severity
    explanation: str
    phrases: list[str] = []
    near: NearSpec | None = None
    allow: list[str] = []
    requires: list[RequiredNote] = []


class RuleSet(_Strict):
    version: int = 1
    rules: list[RuleSpec]


@dataclass(frozen=True)
class Override:
    """An organization's change to one shipped rule (None/empty: as shipped)."""

    rule_id: str
    enabled: bool = True
    severity: str | None = None
    extra_phrases: tuple[str, ...] = ()
    allowed_phrases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    source: str
    severity: str
    explanation: str
    phrases: tuple[str, ...] = ()
    near: NearSpec | None = None
    allow: tuple[str, ...] = ()
    requires: tuple[RequiredNote, ...] = field(default_factory=tuple)


def _joined(text: str) -> str:
    """Japanese written over several YAML lines: the lines join without spaces."""
    return "".join(line.strip() for line in text.splitlines())


def _rule(spec: RuleSpec) -> Rule:
    return Rule(
        spec.id, spec.title, spec.source, str(spec.severity), _joined(spec.explanation),
        tuple(spec.phrases), spec.near, tuple(spec.allow), tuple(spec.requires),
    )  # fmt: skip


@cache
def shipped_rules() -> tuple[Rule, ...]:
    """The product's rule set, read once from rules.yaml."""
    data = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return tuple(_rule(spec) for spec in RuleSet.model_validate(data).rules)


def shipped_rule_ids() -> tuple[str, ...]:
    return tuple(rule.id for rule in shipped_rules())


def with_overrides(rules: tuple[Rule, ...], overrides: list[Override]) -> tuple[Rule, ...]:
    """The rules an organization checks with: switched off ones dropped, the rest changed as it says."""
    by_id = {override.rule_id: override for override in overrides}
    result = []
    for rule in rules:
        override = by_id.get(rule.id)
        if override is None:
            result.append(rule)
        elif override.enabled:
            result.append(
                replace(
                    rule,
                    severity=override.severity or rule.severity,
                    phrases=rule.phrases + tuple(override.extra_phrases),
                    allow=rule.allow + tuple(override.allowed_phrases),
                )
            )
    return tuple(result)
