"""Scenarios as data: the manifest section ``step_scenarios`` (export and apply, by key) and the
same specs for the library's shared scenarios. Ids are written as names: tags, inflow sources,
friend fields (key), rich menus and other scenarios (key)."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from saas.extensions import db
from saas.fields.models import FriendField
from saas.friends import services as friends
from saas.friends.models import Tag
from saas.manifests.schema import ScenarioSpec, StepSpec
from saas.messaging.objects import validate_messages
from saas.richmenu.models import RichMenu
from saas.sources.models import InflowSource
from saas.steps import enrolments
from saas.steps import services as steps
from saas.steps.models import ScenarioStep, StepScenario
from saas.tenancy.scoping import tenant_scope

# rule/action key holding an id → (name key in the manifest, model, the model's name column)
_REFERENCES = {
    "tag_id": ("tag", Tag, Tag.name),
    "source_id": ("source", InflowSource, InflowSource.name),
    "field_id": ("field", FriendField, FriendField.key),
    "rich_menu_id": ("rich_menu", RichMenu, RichMenu.name),
    "scenario_id": ("scenario", StepScenario, StepScenario.key),
}


class SpecProblem(ValueError):
    """A name in a scenario spec that this clinic does not have."""


def _named(entry: dict) -> dict:
    """A stored rule/action/goal with its ids replaced by names."""
    named = {}
    for key, value in entry.items():
        if key in _REFERENCES:
            name_key, model, column = _REFERENCES[key]
            named[name_key] = db.session.scalar(sa.select(column).where(model.id == value)) or ""
        else:
            named[key] = value
    return named


def _with_ids(entry: dict) -> dict:
    """A spec's rule/action/goal with its names turned into this clinic's ids (tags are created)."""
    resolved = {}
    for key, value in entry.items():
        id_key = next((k for k, (name_key, *_) in _REFERENCES.items() if name_key == key), None)
        if id_key is None:
            resolved[key] = value
        elif id_key == "tag_id":
            resolved[id_key] = friends.get_or_create_tag(str(value)).id
        else:
            _, model, column = _REFERENCES[id_key]
            found = db.session.scalar(sa.select(model.id).where(column == str(value)))
            if found is None:
                raise SpecProblem(f"「{value}」が見つかりません")
            resolved[id_key] = found
    return resolved


def _message_out(message: dict):
    return message["text"] if set(message) == {"type", "text"} and message["type"] == "text" else message


def _message_in(message) -> dict:
    return {"type": "text", "text": message} if isinstance(message, str) else dict(message)


def step_spec(step: ScenarioStep, names: dict[int, str]) -> StepSpec:
    conditions = dict(step.conditions or {})
    if conditions.get("rules"):
        conditions["rules"] = [_named(rule) for rule in conditions["rules"]]
    return StepSpec(
        name=step.name, delay=step.delay_kind, after=step.delay_value, unit=step.delay_unit, at=step.at_time,
        messages=[_message_out(m) for m in step.messages or []], conditions=conditions, otherwise=step.otherwise,
        goto=names.get(step.goto_step_id or 0, ""), actions=[_named(a) for a in step.actions or []],
    )  # fmt: skip


def scenario_spec(scenario: StepScenario) -> ScenarioSpec:
    """A scenario as its manifest spec."""
    own = enrolments.steps_of(scenario.id)
    names = {s.id: s.name for s in own}
    return ScenarioSpec(
        key=scenario.key, name=scenario.name, description=scenario.description, status=scenario.status,
        trigger=scenario.trigger, trigger_tag=_named({"tag_id": scenario.trigger_tag_id}).get("tag", "")
        if scenario.trigger_tag_id else "",
        trigger_source=_named({"source_id": scenario.trigger_source_id}).get("source", "")
        if scenario.trigger_source_id else "",
        goals=[_named(g) for g in scenario.goals or []], consent=scenario.consent, send_from=scenario.send_from,
        send_until=scenario.send_until, open_days_only=scenario.open_days_only, allow_restart=scenario.allow_restart,
        resume_on_refollow=scenario.resume_on_refollow, steps=[step_spec(s, names) for s in own],
    )  # fmt: skip


def export(clinic) -> dict:
    """``step_scenarios`` of the clinic."""
    with tenant_scope(clinic.id):
        return {"step_scenarios": [scenario_spec(s) for s in steps.all_scenarios()]}


def _settings(spec: ScenarioSpec) -> dict:
    values = spec.model_dump(include={"name", "key", "description", "trigger", "consent", "send_from", "send_until",
                                      "open_days_only", "allow_restart", "resume_on_refollow"})  # fmt: skip
    if spec.trigger_tag:
        values["trigger_tag_id"] = friends.get_or_create_tag(spec.trigger_tag).id
    if spec.trigger_source:
        values["trigger_source_id"] = _with_ids({"source": spec.trigger_source})["source_id"]
    values["goals"] = [_with_ids(goal) for goal in spec.goals]
    return values


def _step_values(spec: StepSpec) -> tuple[dict, list[dict]]:
    messages = [_message_in(m) for m in spec.messages]
    problems = validate_messages(messages) if messages else []
    if problems:
        raise SpecProblem(str(problems[0]))
    conditions = dict(spec.conditions)
    if conditions.get("rules"):
        conditions["rules"] = [_with_ids(rule) for rule in conditions["rules"]]
    values = {"name": spec.name, "delay_kind": spec.delay, "delay_value": str(spec.after), "delay_unit": spec.unit,
              "at_time": spec.at, "conditions": conditions, "otherwise": spec.otherwise, "goto_step_id": "",
              "actions": [_with_ids(a) for a in spec.actions]}  # fmt: skip
    return values, messages


def normalised(spec: ScenarioSpec) -> ScenarioSpec:
    """The spec as export would write it (plain texts as strings), to compare with the stored one."""
    copied = spec.model_copy(deep=True)
    for step in copied.steps:
        step.messages = [_message_out(_message_in(m)) for m in step.messages]
    return copied


def apply_scenario(clinic, spec: ScenarioSpec, *, library_item_id: int | None = None) -> tuple[StepScenario, bool]:
    """Create or update the clinic's scenario of ``spec.key`` to match it; (scenario, changed).

    Steps are matched by position (friends on a step stay on it); extra steps are deleted. The
    status is set last, so an active scenario never runs half-written. The caller commits.
    """
    scenario = steps.get_by_key(spec.key)
    if scenario is not None and scenario_spec(scenario) == normalised(spec):
        return scenario, False
    scenario = scenario or StepScenario(clinic_id=clinic.id, status="draft", library_item_id=library_item_id)
    try:
        steps.save_scenario(scenario, _settings(spec))
    except steps.ScenarioProblem as problem:
        raise SpecProblem(str(steps.PROBLEM_TEXTS.get(str(problem), problem))) from problem
    _apply_steps(scenario, spec.steps)
    if scenario.status != spec.status:
        try:
            steps.set_status(scenario, spec.status)
        except steps.ScenarioProblem as problem:
            raise SpecProblem(str(problem)) from problem
    return scenario, True


def _apply_steps(scenario: StepScenario, specs: list[StepSpec]) -> None:
    existing = enrolments.steps_of(scenario.id)
    saved: list[ScenarioStep] = []
    for position, spec in enumerate(specs):
        step = existing[position] if position < len(existing) else ScenarioStep()
        values, messages = _step_values(spec)
        try:
            steps.save_step(step, scenario, values, messages)
        except steps.ScenarioProblem as problem:
            raise SpecProblem(f"steps[{position}]: {steps.PROBLEM_TEXTS.get(str(problem), problem)}") from problem
        step.position = position
        saved.append(step)
    for extra in existing[len(specs) :]:
        db.session.delete(extra)
    by_name = {s.name: s for s in saved if s.name}
    for step, spec in zip(saved, specs, strict=True):
        target = by_name.get(spec.goto) if spec.otherwise == "goto" else None
        step.otherwise, step.goto_step_id = ("goto", target.id) if target else ("skip", None)
    db.session.flush()


def apply(clinic, spec, sections: set[str], change: Callable[[str], None], fail: Callable[[str, str], None]) -> None:
    """Bring the clinic's scenarios in line with the manifest's ``step_scenarios`` (the caller commits)."""
    if "step_scenarios" not in sections:
        return
    db.session.flush()
    with tenant_scope(clinic.id):
        for index, scenario in enumerate(spec.step_scenarios):
            try:
                _, changed = apply_scenario(clinic, scenario)
            except SpecProblem as problem:
                fail(f"step_scenarios[{index}]", str(problem))
                return
            if changed:
                change(f"step_scenarios: 「{scenario.name}」を更新")
