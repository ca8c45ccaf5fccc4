"""The stand-in's answers against Stripe's own example objects (``fixtures3.json``).

An answer keeps the contract when it has every key of Stripe's object of the same type, no key
Stripe's object lacks, and the same JSON type wherever both sides carry a value (``null`` is
accepted on either side: Stripe leaves most fields empty for an account that does not use them).
Lists are checked item by item against Stripe's first item; nested objects recursively.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

FIXTURES_ENV = "STRIPE_FIXTURES"
RELATIVE = Path("shared/reference/stripe/fixtures3.json")
EXTRA_ALLOWED = {"previous_attributes"}  # real events carry it on *.updated; the example event has none


def find_fixtures(start: Path) -> Path | None:
    """``$STRIPE_FIXTURES``, else ``shared/reference/stripe/fixtures3.json`` beside an ancestor of ``start``."""
    if os.environ.get(FIXTURES_ENV):
        return Path(os.environ[FIXTURES_ENV])
    for folder in [start, *start.parents]:
        if (folder / RELATIVE).is_file():
            return folder / RELATIVE
    return None


def load_fixtures(path: Path) -> dict[str, dict]:
    return json.loads(path.read_text(encoding="utf-8"))["resources"]


def _kind(value) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", dict: "object", list: "array"}.get(type(value), type(value).__name__)


def mismatches(ours, theirs, path: str = "$") -> list[str]:
    """Every way ``ours`` differs in shape from Stripe's example ``theirs``."""
    if ours is None or theirs is None:
        return []
    if _kind(ours) != _kind(theirs):
        return [f"{path}: {_kind(ours)} where Stripe has {_kind(theirs)}"]
    if isinstance(theirs, dict):
        return _object_mismatches(ours, theirs, path)
    if isinstance(theirs, list) and theirs:
        return [problem for i, item in enumerate(ours) for problem in mismatches(item, theirs[0], f"{path}[{i}]")]
    return []


def _object_mismatches(ours: dict, theirs: dict, path: str) -> list[str]:
    if not theirs:  # metadata, and other free-form maps
        return []
    problems = [f"{path}.{key}: missing" for key in theirs if key not in ours]
    problems += [
        f"{path}.{key}: not in Stripe's object" for key in ours if key not in theirs and key not in EXTRA_ALLOWED
    ]
    for key in theirs.keys() & ours.keys():
        problems += mismatches(ours[key], theirs[key], f"{path}.{key}")
    return problems


def check_answer(answer: dict, fixtures: dict[str, dict]) -> list[str]:
    """An API answer (an object, a list of objects, or an event) against the fixture of its type."""
    kind = answer.get("object")
    if kind == "list":
        return (
            [p for i, item in enumerate(answer["data"]) for p in check_answer(item, fixtures) if p]
            if answer["data"]
            else []
        )
    if kind not in fixtures:
        return [f"$: no Stripe example object for {kind!r}"]
    if kind == "event":
        envelope = {**answer, "data": {**answer["data"], "object": None}}
        problems = mismatches(envelope, fixtures["event"], "event")
        return problems + [f"event.data.{p}" for p in check_answer(answer["data"]["object"], fixtures)]
    return mismatches(answer, fixtures[kind], kind)
