"""Scenarios in the shared libraries (platform, agency, organization): listed for a clinic as it
inherits them (the most specific level wins), and copied into the clinic to use and adjust.

A library scenario is a ``LibraryItem`` of a ``scenario`` set whose body is a
:class:`~saas.manifests.schema.ScenarioSpec` in YAML (without key and name: the item's key and
title). The clinic's copy is its override: it starts as a draft and keeps the item's key.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from pydantic import ValidationError

from saas.library import services as library
from saas.library.models import SetKind
from saas.manifests.schema import ScenarioSpec
from saas.steps import services as steps
from saas.steps.manifest import SpecProblem, apply_scenario


@dataclass(frozen=True)
class LibraryScenario:
    item: library.ResolvedItem
    spec: ScenarioSpec | None  # None: the body does not read as a scenario
    adopted_id: int | None  # the clinic's copy


def spec_of(item: library.ResolvedItem) -> ScenarioSpec | None:
    """The item's scenario, or None when its body is not a valid one."""
    try:
        body = yaml.safe_load(item.body or "") or {}
        return ScenarioSpec(key=item.item_key, name=item.title, **{**body, "status": "draft"})
    except (yaml.YAMLError, TypeError, ValidationError):
        return None


def available(clinic) -> list[LibraryScenario]:
    """The scenarios the clinic inherits, with its own copy where it made one."""
    library.ensure_standard_library()
    items = library.resolve_items(clinic, library.visible_sets(clinic, SetKind.SCENARIO))
    own = {s.key: s.id for s in steps.all_scenarios()}
    return [LibraryScenario(i, spec_of(i), own.get(i.item_key)) for i in items if not i.disabled]


def adopt(clinic, set_id: int, item_key: str):
    """Copy a library scenario into the clinic as a draft (once: an existing copy is returned)."""
    chosen = next(
        (s for s in available(clinic) if s.item.library_set.id == set_id and s.item.item_key == item_key), None
    )
    if chosen is None or chosen.spec is None:
        raise LookupError(item_key)
    existing = steps.get_by_key(item_key)
    if existing is not None:
        return existing
    scenario, _ = apply_scenario(clinic, chosen.spec)
    return scenario


__all__ = ["SpecProblem", "adopt", "available"]
