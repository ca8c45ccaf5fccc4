"""Forms and step delivery (``saas.steps``): an answer reaches the goal ``form_answered`` of
running scenarios, and a form may start one scenario for the friend who answers.

Step delivery is its own capability; this module only calls its public API
(``saas.steps.triggers.on_goal`` / ``start``) when it is installed, and offers no scenario on the
form page while it is not. Other code may observe answers with :func:`register_answer_observer`.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Callable

import sqlalchemy as sa

from saas.extensions import db

log = logging.getLogger(__name__)
_observers: list[Callable] = []


def register_answer_observer(observer: Callable) -> Callable:
    """Decorator: ``observer(clinic, friend, form, answer)`` runs after each answer (same transaction)."""
    if observer not in _observers:
        _observers.append(observer)
    return observer


def _steps(module: str):
    name = f"saas.steps.{module}"
    try:
        return importlib.import_module(name) if importlib.util.find_spec(name) else None
    except ModuleNotFoundError:
        return None


def available() -> list[tuple[int, str]]:
    """(scenario id, name) of the clinic's scenarios a form may start; empty without step delivery."""
    models = _steps("models")
    scenario = getattr(models, "StepScenario", None)
    if scenario is None:
        return []
    rows = db.session.execute(sa.select(scenario.id, scenario.name).order_by(scenario.name))
    return [(sid, name) for sid, name in rows]


def form_answered(clinic, friend, form, answer) -> None:
    """Tell observers and step delivery (goal reached, the form's scenario started); the caller commits."""
    for observer in _observers:
        observer(clinic, friend, form, answer)
    triggers, models = _steps("triggers"), _steps("models")
    if triggers is None or models is None:
        if form.scenario_id:
            log.warning("form %s names scenario %s but step delivery is not installed", form.id, form.scenario_id)
        return
    triggers.on_goal(friend, "form_answered", form_id=form.id)
    scenario = db.session.get(models.StepScenario, form.scenario_id) if form.scenario_id else None
    if scenario is not None:
        triggers.start(friend, scenario, "form")
