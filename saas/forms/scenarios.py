"""Starting a step scenario for the friend who answered a form, through ``saas.steps``.

The step-delivery capability is written separately: when ``saas.steps.triggers`` exists, a form
may name a scenario and :func:`start` asks it to start; until then the form page offers no
scenario. Other capabilities may also observe answers with :func:`register_answer_observer`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)
_observers: list[Callable] = []


def register_answer_observer(observer: Callable) -> Callable:
    """Decorator: ``observer(clinic, friend, form, answer)`` runs after an answer is committed."""
    if observer not in _observers:
        _observers.append(observer)
    return observer


def _triggers():
    name = "saas.steps.triggers"
    try:
        return importlib.import_module(name) if importlib.util.find_spec(name) else None
    except ModuleNotFoundError:
        return None


def available() -> list[tuple[int, str]]:
    """(scenario id, name) pairs a form may start; empty while step delivery is not installed."""
    triggers = _triggers()
    lister = getattr(triggers, "scenarios_for_forms", None)
    return list(lister()) if lister else []


def form_answered(clinic, friend, form, answer) -> None:
    """Run the observers, then start the form's scenario (if any, and if steps can)."""
    for observer in _observers:
        observer(clinic, friend, form, answer)
    triggers = _triggers()
    start = getattr(triggers, "form_answered", None)
    if start is not None:
        start(clinic, friend, form, answer)
    elif form.scenario_id:
        log.warning("form %s names scenario %s but step delivery is not installed", form.id, form.scenario_id)
