"""The scenario and step forms of the portal, read into the values the services store."""

from __future__ import annotations

from collections.abc import Mapping

from saas.common import parse_id

ROWS = range(3)  # condition and action rows on the step form
GOAL_BOXES = ("booked", "visited", "coupon_used", "form_answered")  # any booking, visit, coupon use or form answer
CONDITION_KINDS = ("tag_has", "tag_not", "field", "source", "booked", "not_booked", "coupon_used", "coupon_not_used",
                   "form_answered", "form_not_answered")  # fmt: skip
# Yes/no conditions on something the friend did, optionally naming which (a coupon, a form).
DONE_CONDITIONS = {"coupon_used": "coupon", "form_answered": "form"}
# Conditions and actions that mean nothing without what they name: a row of one of these kinds
# whose choice cannot be read is refused, never dropped (a dropped tag condition sends to everyone).
CONDITION_TARGETS = {"tag_has": "tag", "tag_not": "tag", "field": "field", "source": "source"}
ACTION_TARGETS = {
    "add_tag": "tag_id",
    "remove_tag": "tag_id",
    "rich_menu": "rich_menu_id",
    "start_scenario": "scenario_id",
}


def _int(text) -> int | None:
    return parse_id(text or "")


def read_scenario(form: Mapping) -> dict:
    """The scenario form's fields; goals from the booked/visited boxes and the goal tags."""
    goals = [{"kind": kind} for kind in GOAL_BOXES if form.get(f"goal_{kind}")]
    goals += [{"kind": "tag", "tag_id": tag_id} for tag_id in map(_int, form.getlist("goal_tag_ids")) if tag_id]
    values = {name: form.get(name, "") for name in ("name", "key", "description", "trigger", "consent")}
    values.update(
        {name: form.get(name, "") for name in ("send_from", "send_until", "trigger_tag_id", "trigger_source_id")}
    )
    values.update({name: form.get(name) == "1" for name in ("allow_restart", "resume_on_refollow", "open_days_only")})
    values["goals"] = goals + [g for g in _kept_goals(form)]
    return values


def _kept_goals(form: Mapping) -> list[dict]:
    """Goals set elsewhere (coupons, forms) that this form does not show are kept as they were."""
    import json

    try:
        kept = json.loads(form.get("other_goals") or "[]")
    except ValueError:
        return []
    if not isinstance(kept, list):
        return []
    return [g for g in kept if isinstance(g, dict) and g.get("kind") in ("coupon_used", "form_answered") and len(g) > 1]


def _condition(form: Mapping, n: int) -> dict | None:
    kind = form.get(f"cond{n}_kind") or ""
    if kind in ("tag_has", "tag_not") and _int(form.get(f"cond{n}_tag")):
        return {"kind": "tag", "tag_id": _int(form.get(f"cond{n}_tag")), "has": kind == "tag_has"}
    if kind == "field" and _int(form.get(f"cond{n}_field")):
        return {"kind": "field", "field_id": _int(form.get(f"cond{n}_field")), "op": form.get(f"cond{n}_op") or "eq",
                "value": (form.get(f"cond{n}_value") or "").strip()}  # fmt: skip
    if kind == "source" and _int(form.get(f"cond{n}_source")):
        return {"kind": "source", "source_id": _int(form.get(f"cond{n}_source"))}
    if kind in ("booked", "not_booked"):
        return {"kind": "booked", "value": kind == "booked"}
    done = kind.replace("_not_", "_")
    if done in DONE_CONDITIONS:
        rule = {"kind": done, "value": done == kind}
        which = _int(form.get(f"cond{n}_{DONE_CONDITIONS[done]}"))
        return rule | ({f"{DONE_CONDITIONS[done]}_id": which} if which else {})
    return None


def _action(form: Mapping, n: int) -> dict | None:
    kind, target = form.get(f"act{n}_kind") or "", _int(form.get(f"act{n}_target"))
    return {"kind": kind, ACTION_TARGETS[kind]: target} if kind in ACTION_TARGETS and target else None


def _unfinished_row(form: Mapping) -> str:
    """ "condition" or "action" when a row cannot be read as it was chosen: a kind the form does
    not offer, a tag, field or source missing or unreadable, or a coupon or form that was named
    but cannot be read (left blank, it means any coupon or form)."""
    for n in ROWS:
        kind = form.get(f"cond{n}_kind") or ""
        if kind and kind not in CONDITION_KINDS:
            return "condition"
        if kind in CONDITION_TARGETS and not _int(form.get(f"cond{n}_{CONDITION_TARGETS[kind]}")):
            return "condition"
        named = (form.get(f"cond{n}_{DONE_CONDITIONS.get(kind.replace('_not_', '_'), '')}") or "").strip()
        if kind.replace("_not_", "_") in DONE_CONDITIONS and named and not _int(named):
            return "condition"
    for n in ROWS:
        kind = form.get(f"act{n}_kind") or ""
        if kind and (kind not in ACTION_TARGETS or not _int(form.get(f"act{n}_target"))):
            return "action"
    return ""


def read_step(form: Mapping) -> dict:
    """The step form's delay, conditions (up to three rows), branch and actions."""
    rules = [rule for rule in (_condition(form, n) for n in ROWS) if rule]
    values = {name: form.get(name, "") for name in ("name", "delay_kind", "delay_value", "delay_unit", "at_time")}
    values["conditions"] = (
        {"match": "any" if form.get("cond_match") == "any" else "all", "rules": rules} if rules else {}
    )
    values["otherwise"], values["goto_step_id"] = form.get("otherwise", "skip"), form.get("goto_step_id", "")
    values["actions"] = [action for action in (_action(form, n) for n in ROWS) if action]
    values["unfinished"] = _unfinished_row(form)
    return values


def step_form_values(step) -> dict:
    """A stored step as the form's field values (for editing)."""
    values = {"name": step.name, "delay_kind": step.delay_kind, "delay_value": str(step.delay_value),
              "delay_unit": step.delay_unit, "at_time": step.at_time, "otherwise": step.otherwise,
              "goto_step_id": str(step.goto_step_id or ""), "cond_match": (step.conditions or {}).get("match", "all")}  # fmt: skip
    for n, rule in enumerate((step.conditions or {}).get("rules", [])[: len(ROWS)]):
        values.update(_condition_values(n, rule))
    for n, action in enumerate((step.actions or [])[: len(ROWS)]):
        values[f"act{n}_kind"] = action.get("kind", "")
        values[f"act{n}_target"] = str(next((v for k, v in action.items() if k.endswith("_id")), ""))
    values.update(composer_values(step.messages or []))
    return values


def _condition_values(n: int, rule: dict) -> dict:
    kind = rule.get("kind")
    if kind == "tag":
        return {
            f"cond{n}_kind": "tag_has" if rule.get("has", True) else "tag_not",
            f"cond{n}_tag": str(rule.get("tag_id")),
        }
    if kind == "field":
        return {f"cond{n}_kind": "field", f"cond{n}_field": str(rule.get("field_id")), f"cond{n}_op": rule.get("op", "eq"),
                f"cond{n}_value": str(rule.get("value", ""))}  # fmt: skip
    if kind == "source":
        return {f"cond{n}_kind": "source", f"cond{n}_source": str(rule.get("source_id"))}
    if kind == "booked":
        return {f"cond{n}_kind": "booked" if rule.get("value", True) else "not_booked"}
    if kind in DONE_CONDITIONS:
        what = DONE_CONDITIONS[kind]
        shown = kind if rule.get("value", True) else kind.replace("_", "_not_", 1)
        return {f"cond{n}_kind": shown, f"cond{n}_{what}": str(rule.get(f"{what}_id") or "")}
    return {}


def composer_values(messages: list[dict]) -> dict:
    """Stored message objects as the composer's slot fields (text, image, sticker; others as Flex JSON)."""
    import json

    values: dict[str, str] = {}
    for slot, message in enumerate(messages):
        kind, p = message.get("type"), f"m{slot}_"
        if kind == "text":
            values.update({p + "type": "text", p + "text": message.get("text", "")})
        elif kind == "image":
            values.update({p + "type": "image", p + "image_url": message.get("originalContentUrl", ""),
                           p + "preview_url": message.get("previewImageUrl", "")})  # fmt: skip
        elif kind == "sticker":
            values.update({p + "type": "sticker", p + "package_id": str(message.get("packageId", "")),
                           p + "sticker_id": str(message.get("stickerId", ""))})  # fmt: skip
        elif kind == "template":
            values.update(_buttons_values(p, message))
        elif kind == "flex":
            values.update({p + "type": "flex", p + "flex_alt_text": message.get("altText", ""),
                           p + "flex_json": json.dumps(message.get("contents", {}), ensure_ascii=False)})  # fmt: skip
    quick = ((messages[-1].get("quickReply") or {}).get("items") or []) if messages else []
    if quick:
        values["quick_replies"] = "\n".join(_quick_line(item.get("action") or {}) for item in quick)
    return values


def _quick_line(action: dict) -> str:
    label, text = action.get("label", ""), action.get("text", "")
    return label if text in ("", label) else f"{label}|{text}"


def _buttons_values(p: str, message: dict) -> dict:
    template = message.get("template") or {}
    values = {p + "type": "buttons", p + "text": template.get("text", ""), p + "title": template.get("title", ""),
              p + "thumbnail_url": template.get("thumbnailImageUrl", ""), p + "alt_text": message.get("altText", "")}  # fmt: skip
    for n, action in enumerate(template.get("actions") or []):
        uri = action.get("type") == "uri"
        values.update({f"{p}action{n}_label": action.get("label", ""), f"{p}action{n}_kind": "uri" if uri else "message",
                       f"{p}action{n}_value": action.get("uri" if uri else "text", "")})  # fmt: skip
    return values
