"""Portal pages of step delivery (ステップ配信): scenarios with their funnel, the editor and its
steps, the phone preview, test sends, starting for a segment, and a friend's progress."""

from __future__ import annotations

import json

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.adcheck.gate import gate as adcheck_gate
from saas.adcheck.services import message_texts
from saas.audit.services import record
from saas.common import parse_id
from saas.coupons.models import Coupon
from saas.delivery.forms import read_segment
from saas.delivery.services import QueueUnavailable
from saas.extensions import db
from saas.fields.segments import OP_LABELS
from saas.fields.services import OPERATORS, all_fields
from saas.forms.models import Form
from saas.friends import services as friends
from saas.friends.models import Friend
from saas.library.models import LEVEL_LABELS
from saas.messaging.composer import ACTION_KINDS, ACTION_SLOTS, SLOT_TYPES, SLOTS, Composition, compose
from saas.messaging.variables import VARIABLES, sample_context
from saas.portal import menu
from saas.richmenu.models import RichMenu
from saas.sources.services import all_sources
from saas.steps import enrolments, events, forms, services  # noqa: F401  (events registers the triggers)
from saas.steps import library as step_library
from saas.steps.models import ScenarioStatus, ScenarioStep, StepScenario, StopReason
from saas.tenancy.access import current_clinic, require

bp = Blueprint("steps", __name__, url_prefix="/c/<clinic>/steps")

TRIGGER_LABELS = {
    "manual": _l("手動（スタッフが開始）"),
    "follow": _l("友だち追加"),
    "tag": _l("タグが付いたとき"),
    "booking_made": _l("予約したとき"),
    "booking_completed": _l("来院したとき（予約の来院済み）"),
    "postback": _l("リッチメニュー・ボタンのタップ"),
}
STATUS_LABELS = {"draft": _l("下書き"), "active": _l("配信中"), "paused": _l("一時停止")}
DELAY_LABELS = {
    "after_previous": _l("前のステップから"),
    "after_start": _l("開始から"),
    "day_at": _l("開始日からN日後の時刻"),
}
UNIT_LABELS = {"minutes": _l("分後"), "hours": _l("時間後"), "days": _l("日後")}
CONDITION_LABELS = {
    "tag_has": _l("タグあり"),
    "tag_not": _l("タグなし"),
    "field": _l("友だち項目"),
    "source": _l("流入経路"),
    "booked": _l("予約あり"),
    "not_booked": _l("予約なし"),
    "coupon_used": _l("クーポン利用あり"),
    "coupon_not_used": _l("クーポン利用なし"),
    "form_answered": _l("フォーム回答あり"),
    "form_not_answered": _l("フォーム回答なし"),
}
ACTION_LABELS = {
    "add_tag": _l("タグを付ける"),
    "remove_tag": _l("タグを外す"),
    "rich_menu": _l("リッチメニューを切り替える"),
    "start_scenario": _l("別のシナリオを開始"),
}
SEND_LABELS = {"sending": _l("送信中"), "sent": _l("送信済み"), "skipped": _l("スキップ"), "failed": _l("失敗")}
REASON_LABELS = {
    "blocked": _l("ブロック中"),
    "no_consent": _l("配信同意なし"),
    "condition": _l("条件に合わない"),
    "cancelled": _l("キャンセル"),
    "failed": _l("送信失敗"),
    "actions": _l("アクションのみ"),
}
STOP_LABELS = {
    "goal": _l("ゴール達成"),
    "unfollowed": _l("ブロック"),
    "manual": _l("手動で停止"),
    "restarted": _l("最初からやり直し"),
    "": _l("完了"),
}


@bp.app_context_processor
def _labels() -> dict:
    return {
        "step_progress": services.progress_for_friend,
        "step_send_labels": SEND_LABELS,
        "step_reason_labels": REASON_LABELS,
        "step_stop_labels": STOP_LABELS,
        "step_scenarios_to_start": _startable,
    }


def _startable() -> list[StepScenario]:
    return [s for s in services.all_scenarios() if s.status == ScenarioStatus.ACTIVE]


def _scenario_or_404(scenario_id: int) -> StepScenario:
    return db.get_or_404(StepScenario, scenario_id)  # another clinic's scenario is invisible: 404


def _step_or_404(scenario: StepScenario, step_id: int) -> ScenarioStep:
    step = db.get_or_404(ScenarioStep, step_id)
    if step.scenario_id != scenario.id:
        abort(404)
    return step


def _choices() -> dict:
    return {
        "tags": friends.clinic_tags(),
        "sources": all_sources(),
        "fields": all_fields(),
        "field_ops": sorted({op for ops in OPERATORS.values() for op in ops}),
        "op_labels": OP_LABELS,
        "menus": list(db.session.scalars(db.select(RichMenu).order_by(RichMenu.id))),
        "coupons": list(db.session.scalars(db.select(Coupon).order_by(Coupon.id.desc()))),
        "clinic_forms": list(db.session.scalars(db.select(Form).order_by(Form.id.desc()))),
        "all_scenarios": services.all_scenarios(),
        "trigger_labels": TRIGGER_LABELS,
        "status_labels": STATUS_LABELS,
        "delay_labels": DELAY_LABELS,
        "unit_labels": UNIT_LABELS,
    }


@bp.get("/")
@login_required
@require("messages.send")
def index():
    """Every scenario with its funnel: started, reached each step, goal, blocked on the way."""
    scenarios = services.all_scenarios()
    funnels = {s.id: services.funnel(s) for s in scenarios}
    figures = [("started", _("開始"), "#3e63dd"), ("goal", _("ゴール達成"), "#06c755"),
               ("unfollowed", _("途中でブロック"), "#e5484d"), ("completed", _("最後まで完了"), "#8e8c99")]  # fmt: skip
    chart = {
        "labels": [s.name for s in scenarios],
        "series": [
            {"label": label, "color": color, "data": [getattr(funnels[s.id], name) for s in scenarios]}
            for name, label, color in figures
        ],
    }
    shared = step_library.available(current_clinic())
    db.session.commit()  # the standard library is loaded on first use
    return render_template(
        "steps/index.html",
        scenarios=scenarios,
        funnels=funnels,
        chart=chart,
        shared=shared,
        level_labels=LEVEL_LABELS,
        **_choices(),
    )


@bp.post("/library/<int:set_id>/<item_key>")
@login_required
@require("messages.send")
def adopt(set_id: int, item_key: str):
    """Copy a shared (library) scenario into this clinic as a draft to adjust and start."""
    try:
        scenario = step_library.adopt(current_clinic(), set_id, item_key)
    except LookupError:
        abort(404)
    except step_library.SpecProblem as problem:
        db.session.rollback()
        flash(str(problem), "error")
        return redirect(url_for("steps.index"))
    record("steps.adopted", target_type="step_scenario", target_id=scenario.id, details={"item": item_key})
    db.session.commit()
    flash(_("ライブラリの「%(name)s」をこのクリニックに追加しました（下書き）。", name=scenario.name), "success")
    return redirect(url_for("steps.edit", scenario_id=scenario.id))


@bp.post("/")
@login_required
@require("messages.send")
def create():
    """A new scenario (a draft until it has steps and is started)."""
    scenario = StepScenario(clinic_id=current_clinic().id, status=ScenarioStatus.DRAFT)
    try:
        services.save_scenario(scenario, forms.read_scenario(request.form))
    except services.ScenarioProblem as problem:
        db.session.rollback()
        flash(str(services.PROBLEM_TEXTS[str(problem)]), "error")
        return redirect(url_for("steps.index"))
    record("steps.scenario_saved", target_type="step_scenario", target_id=scenario.id, details={"key": scenario.key})
    db.session.commit()
    return redirect(url_for("steps.edit", scenario_id=scenario.id))


@bp.get("/<int:scenario_id>")
@login_required
@require("messages.send")
def edit(scenario_id: int):
    """The scenario editor: settings, steps in order, start and test controls."""
    scenario = _scenario_or_404(scenario_id)
    return render_template(
        "steps/edit.html",
        scenario=scenario,
        steps=enrolments.steps_of(scenario.id),
        funnel=services.funnel(scenario),
        other_goals=json.dumps([g for g in scenario.goals or [] if g.get("kind") in ("coupon_used", "form_answered")]),
        goal_tag_ids=[g.get("tag_id") for g in scenario.goals or [] if g.get("kind") == "tag"],
        goal_kinds=[g.get("kind") for g in scenario.goals or []],
        generic_goals=[g.get("kind") for g in scenario.goals or [] if len(g) == 1],
        values=request.form,
        **_choices(),
    )


@bp.post("/<int:scenario_id>")
@login_required
@require("messages.send")
def save(scenario_id: int):
    """Change a scenario's settings."""
    scenario = _scenario_or_404(scenario_id)
    try:
        services.save_scenario(scenario, forms.read_scenario(request.form))
    except services.ScenarioProblem as problem:
        db.session.rollback()
        flash(str(services.PROBLEM_TEXTS[str(problem)]), "error")
        return redirect(url_for("steps.edit", scenario_id=scenario_id))
    record("steps.scenario_saved", target_type="step_scenario", target_id=scenario.id, details={"key": scenario.key})
    db.session.commit()
    flash(_("シナリオを保存しました。"), "success")
    return redirect(url_for("steps.edit", scenario_id=scenario.id))


@bp.post("/<int:scenario_id>/status")
@login_required
@require("messages.send")
def change_status(scenario_id: int):
    """Start (active), pause or back to draft."""
    scenario = _scenario_or_404(scenario_id)
    try:
        services.set_status(scenario, request.form.get("status", ""))
    except services.ScenarioProblem as problem:
        db.session.rollback()
        flash(str(services.PROBLEM_TEXTS[str(problem)]), "error")
        return redirect(url_for("steps.edit", scenario_id=scenario_id))
    record(
        "steps.scenario_status", target_type="step_scenario", target_id=scenario.id, details={"status": scenario.status}
    )
    db.session.commit()
    return redirect(url_for("steps.edit", scenario_id=scenario.id))


def _step_page(scenario, step, values, composition=None, preview=None, status: int = 200, gate=None):
    page = render_template(
        "steps/step.html",
        gate=gate,
        scenario=scenario,
        step=step,
        steps=enrolments.steps_of(scenario.id),
        values=values,
        composition=composition,
        preview=preview or [],
        slot_types=SLOT_TYPES,
        action_kinds=ACTION_KINDS,
        slots=SLOTS,
        action_slots=ACTION_SLOTS,
        variables=VARIABLES,
        rows=forms.ROWS,
        condition_labels=CONDITION_LABELS,
        action_labels=ACTION_LABELS,
        **_choices(),
    )
    return page, status


@bp.get("/<int:scenario_id>/steps/new")
@bp.get("/<int:scenario_id>/steps/<int:step_id>")
@login_required
@require("messages.send")
def edit_step(scenario_id: int, step_id: int | None = None):
    """The step editor: delay, messages (the composer's five slots), conditions, actions."""
    scenario = _scenario_or_404(scenario_id)
    step = _step_or_404(scenario, step_id) if step_id else None
    values = forms.step_form_values(step) if step else {"m0_type": "text", "delay_value": "1", "delay_unit": "days"}
    preview = None
    if step:
        preview = compose(values, sample_context(current_clinic()))[1]
    return _step_page(scenario, step, values, preview=preview)


@bp.post("/<int:scenario_id>/steps/preview")
@login_required
@require("messages.send")
def preview_step(scenario_id: int):
    """htmx: the step's messages as LINE shows them, with each slot's errors."""
    _scenario_or_404(scenario_id)
    composition, rendered = compose(request.form, sample_context(current_clinic()))
    if all(m.get("type") == "text" and not m.get("text") for m in composition.messages):
        composition = Composition()  # nothing typed yet (the preview also runs when the page opens): no errors
    return render_template("messaging/_preview.html", composition=composition, preview=rendered, slots=SLOTS, oob=True)


@bp.post("/<int:scenario_id>/steps/")
@bp.post("/<int:scenario_id>/steps/<int:step_id>")
@login_required
@require("messages.send")
def save_step(scenario_id: int, step_id: int | None = None):
    """Create or change a step."""
    scenario = _scenario_or_404(scenario_id)
    step = _step_or_404(scenario, step_id) if step_id else ScenarioStep()
    composition, rendered = compose(request.form, sample_context(current_clinic()))
    if composition.problems and composition.messages:  # no message at all: a step of actions only
        return _step_page(scenario, step if step_id else None, request.form, composition, rendered, 422)
    check = adcheck_gate(current_clinic(), message_texts(composition.messages), request.form)
    if not check.passed:  # the 医療広告 check: warnings acknowledged, block phrases approved by an admin
        for problem in check.problems():
            flash(problem, "error")
        return _step_page(scenario, step if step_id else None, request.form, composition, rendered, 422, gate=check)
    try:
        services.save_step(step, scenario, forms.read_step(request.form), composition.messages)
    except services.ScenarioProblem as problem:
        db.session.rollback()
        flash(str(services.PROBLEM_TEXTS[str(problem)]), "error")
        return _step_page(scenario, step if step_id else None, request.form, composition, rendered, 400)
    record("steps.step_saved", target_type="step_scenario", target_id=scenario.id, details={"step": step.id})
    check.record("step_scenario", scenario.id)
    db.session.commit()
    flash(_("ステップを保存しました。"), "success")
    return redirect(url_for("steps.edit", scenario_id=scenario.id))


@bp.post("/<int:scenario_id>/steps/<int:step_id>/move")
@login_required
@require("messages.send")
def move_step(scenario_id: int, step_id: int):
    scenario = _scenario_or_404(scenario_id)
    services.move_step(_step_or_404(scenario, step_id), -1 if request.form.get("direction") == "up" else 1)
    db.session.commit()
    return redirect(url_for("steps.edit", scenario_id=scenario.id))


@bp.post("/<int:scenario_id>/steps/<int:step_id>/delete")
@login_required
@require("messages.send")
def delete_step(scenario_id: int, step_id: int):
    scenario = _scenario_or_404(scenario_id)
    services.delete_step(_step_or_404(scenario, step_id))
    record("steps.step_deleted", target_type="step_scenario", target_id=scenario.id, details={"step": step_id})
    db.session.commit()
    flash(_("ステップを削除しました。"), "success")
    return redirect(url_for("steps.edit", scenario_id=scenario.id))


@bp.get("/<int:scenario_id>/preview")
@login_required
@require("messages.send")
def preview(scenario_id: int):
    """The whole scenario as a patient's phone shows it, day by day."""
    scenario = _scenario_or_404(scenario_id)
    return render_template(
        "steps/preview.html", scenario=scenario, timeline=services.preview(scenario, current_clinic())
    )


@bp.post("/<int:scenario_id>/test")
@login_required
@require("messages.send")
def test_send(scenario_id: int):
    """Send every step now to one friend (a staff member's own LINE, or a sandbox patient)."""
    scenario = _scenario_or_404(scenario_id)
    friend = db.get_or_404(Friend, parse_id(request.form.get("friend_id", "")) or 0)
    try:
        queued = services.test_send(scenario, friend)
    except QueueUnavailable:
        flash(_("送信キューに接続できません。しばらくしてからもう一度お試しください。"), "error")
        return redirect(url_for("steps.edit", scenario_id=scenario.id))
    record("steps.test_send", target_type="friend", target_id=friend.id, details={"scenario": scenario.id})
    db.session.commit()
    flash(_("%(name)sさんに %(n)s 件のステップをテスト送信しました。", name=friend.display_name, n=queued), "success")
    return redirect(url_for("steps.edit", scenario_id=scenario.id))


@bp.post("/<int:scenario_id>/segment")
@login_required
@require("messages.send")
def start_for_segment(scenario_id: int):
    """Start for a segment: first the count and the quota, then (confirmed) the start."""
    scenario = _scenario_or_404(scenario_id)
    segment, errors = read_segment(request.form)
    if errors or scenario.status != ScenarioStatus.ACTIVE:
        flash(" ".join(errors) or _("配信中のシナリオだけ開始できます。"), "error")
        return redirect(url_for("steps.edit", scenario_id=scenario.id))
    check = services.check_segment(scenario, segment)
    if request.form.get("confirm") != "1":
        return render_template("steps/segment.html", scenario=scenario, check=check, form=request.form)
    started = services.start_for_segment(scenario, segment)
    record("steps.started_for_segment", target_type="step_scenario", target_id=scenario.id,
           details={"segment": segment, "started": started})  # fmt: skip
    db.session.commit()
    flash(_("%(n)s 人にシナリオを開始しました。", n=started), "success")
    return redirect(url_for("steps.edit", scenario_id=scenario.id))


@bp.post("/friends/<int:friend_id>/start")
@login_required
@require("messages.send")
def start_for_friend(friend_id: int):
    """Start a scenario for one friend (from the friend's page)."""
    friend = db.get_or_404(Friend, friend_id)
    scenario = _scenario_or_404(parse_id(request.form.get("scenario_id", "")) or 0)
    started = enrolments.start(friend, scenario, "manual")
    record("steps.started", target_type="friend", target_id=friend.id, details={"scenario": scenario.id})
    db.session.commit()
    if started is None:
        flash(
            _("開始できませんでした（配信中でない、すでに参加中、または再参加を許可していないシナリオです）。"), "error"
        )
    else:
        flash(_("「%(name)s」を開始しました。", name=scenario.name), "success")
    return redirect(url_for("friends.detail", friend_id=friend.id))


@bp.post("/friends/<int:friend_id>/stop")
@login_required
@require("messages.send")
def stop_for_friend(friend_id: int):
    """Take one friend out of a scenario now."""
    friend = db.get_or_404(Friend, friend_id)
    scenario = _scenario_or_404(parse_id(request.form.get("scenario_id", "")) or 0)
    stopped = enrolments.stop_when(friend, lambda s: s.id == scenario.id, StopReason.MANUAL)
    record("steps.stopped", target_type="friend", target_id=friend.id, details={"scenario": scenario.id})
    db.session.commit()
    if stopped:
        flash(_("「%(name)s」を停止しました。", name=scenario.name), "success")
    return redirect(url_for("friends.detail", friend_id=friend.id))


menu.register("steps.index", _l("ステップ配信"), "⋯", "messages.send", order=23)
