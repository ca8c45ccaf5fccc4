"""Portal pages: the rule editor with a test box, and greeting / fallback / hand-off settings."""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.adcheck.gate import gate as adcheck_gate
from saas.audit.services import record
from saas.autoreply import (
    emergency,
    responders,  # noqa: F401  (registers the conversation responders)
    services,
)
from saas.autoreply.matcher import MAX_UNGUARDED_REGEX_RULES
from saas.autoreply.models import COMPUTED_LABELS, AutoReplyRule, MatchType
from saas.common import parse_id
from saas.extensions import db
from saas.friends.models import Friend
from saas.library.render import VARIABLES
from saas.portal.menu import register
from saas.tenancy.access import current_clinic, require

MAX_RESUME_HOURS = 24 * 365  # a year

bp = Blueprint("autoreply", __name__, url_prefix="/c/<clinic>/autoreply")
register("autoreply.rules", _l("自動応答"), "✉", "clinic.view", order=40)

MATCH_LABELS = {MatchType.CONTAINS: _l("含む"), MatchType.EXACT: _l("完全一致"), MatchType.REGEX: _l("正規表現")}
CLOCK = re.compile(r"^(([01]\d|2[0-3]):[0-5]\d)?$")


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").replace("、", "\n").replace(",", "\n").splitlines() if line.strip()]


def _texts(form, name: str) -> list[dict]:
    return [{"type": "text", "text": t.strip()} for t in form.getlist(name) if t.strip()]


def _friends_by_line_id(line_user_ids: list[str]) -> dict[str, Friend]:
    if not line_user_ids:
        return {}
    friends = db.session.scalars(sa.select(Friend).where(Friend.line_user_id.in_(line_user_ids)))
    return {friend.line_user_id: friend for friend in friends}


@bp.get("/")
@login_required
@require("clinic.view")
def rules():
    """Every rule by priority, the test box and the conversations staff currently hold."""
    clinic = current_clinic()
    rows = db.session.scalars(sa.select(AutoReplyRule).order_by(AutoReplyRule.priority.desc(), AutoReplyRule.id)).all()
    paused = services.paused_conversations(clinic.id)
    return render_template(
        "autoreply/rules.html",
        rules=rows,
        match_labels=MATCH_LABELS,
        computed_labels=COMPUTED_LABELS,
        paused=paused,
        paused_friends=_friends_by_line_id([state.line_user_id for state in paused]),
        settings=services.get_settings(clinic.id),
    )


@bp.post("/test")
@login_required
@require("clinic.view")
def test_message():
    """The test box: which rule answers a patient's message, and the reply (nothing is sent)."""
    clinic = current_clinic()
    text = request.form.get("text", "").strip()
    reply = services.reply_to(clinic, text, dry_run=True) if text else None
    db.session.rollback()
    template = "autoreply/_test_result.html"
    if request.headers.get("HX-Request"):
        return render_template(template, text=text, reply=reply)
    return render_template("autoreply/test_page.html", text=text, reply=reply, result_template=template)


def _rule_errors(form) -> list[str]:
    errors = []
    if not form.get("name", "").strip():
        errors.append(_("ルール名を入力してください"))
    if not _lines(form.get("keywords", "")):
        errors.append(_("キーワードを1つ以上入力してください"))
    if not (CLOCK.match(form.get("active_from", "")) and CLOCK.match(form.get("active_until", ""))):
        errors.append(_("有効時間は HH:MM で入力してください"))
    if form.get("match_type") == MatchType.REGEX:
        for pattern in _lines(form.get("keywords", "")):
            try:
                re.compile(pattern)
            except re.error as exc:
                errors.append(_("正規表現 %(p)s が正しくありません: %(e)s", p=pattern, e=exc))
    if not _texts(form, "reply") and not form.get("computed"):
        errors.append(_("返信メッセージか自動作成の回答を選んでください"))
    return errors


def _unguarded_regex_count(exclude_id: int | None) -> int:
    query = sa.select(sa.func.count()).where(
        AutoReplyRule.match_type == MatchType.REGEX, AutoReplyRule.required_literal == ""
    )
    if exclude_id:
        query = query.where(AutoReplyRule.id != exclude_id)
    return db.session.scalar(query)


def _fill_rule(rule: AutoReplyRule, form) -> None:
    rule.name = form["name"].strip()[:120]
    rule.match_type = form.get("match_type") if form.get("match_type") in set(MatchType) else MatchType.CONTAINS
    keywords = form.get("keywords", "")
    rule.keywords = (
        [k for k in keywords.splitlines() if k.strip()] if rule.match_type == MatchType.REGEX else _lines(keywords)
    )
    rule.required_literal = form.get("required_literal", "").strip()[:100]
    priority = parse_id(form.get("priority", ""))
    rule.priority = 100 if priority is None else priority
    rule.enabled = bool(form.get("enabled"))
    rule.active_from, rule.active_until = form.get("active_from", ""), form.get("active_until", "")
    rule.messages = _texts(form, "reply")
    rule.computed = form.get("computed") if form.get("computed") in COMPUTED_LABELS else ""


@bp.route("/rules/new", methods=["GET", "POST"])
@bp.route("/rules/<int:rule_id>", methods=["GET", "POST"])
@login_required
@require("autoreply.edit")
def edit_rule(rule_id: int | None = None):
    rule = (
        db.session.get(AutoReplyRule, rule_id)
        if rule_id
        else AutoReplyRule(priority=100, enabled=True, keywords=[], messages=[])
    )
    if rule is None:
        abort(404)
    check = None
    if request.method == "POST":
        errors = _rule_errors(request.form)
        check = adcheck_gate(current_clinic(), _reply_texts(request.form), request.form)
        errors += check.problems()
        unguarded = request.form.get("match_type") == MatchType.REGEX and not request.form.get("required_literal")
        if unguarded and _unguarded_regex_count(rule.id) >= MAX_UNGUARDED_REGEX_RULES:
            errors.append(
                _(
                    "必須キーワードのない正規表現ルールは %(n)d 件までです（応答速度を保つため）",
                    n=MAX_UNGUARDED_REGEX_RULES,
                )
            )
        if not errors:
            _fill_rule(rule, request.form)
            db.session.add(rule)
            db.session.flush()
            check.record("auto_reply_rule", rule.id)
            db.session.commit()
            flash(_("ルール「%(name)s」を保存しました。", name=rule.name), "success")
            return redirect(url_for("autoreply.rules"))
        for error in errors:
            flash(error, "error")
    return render_template(
        "autoreply/rule_form.html", rule=rule, match_labels=MATCH_LABELS, computed_labels=COMPUTED_LABELS,
        variables=VARIABLES, form=request.form if request.method == "POST" else None, gate=check,
    )  # fmt: skip


def _reply_texts(form) -> dict[str, str]:
    """The answer texts of the rule form, for the advertising check (FAQ answers are advertising too)."""
    return {f"reply{n}": text for n, text in enumerate(form.getlist("reply")) if text.strip()}


@bp.post("/rules/<int:rule_id>/delete")
@login_required
@require("autoreply.edit")
def delete_rule(rule_id: int):
    rule = db.session.get(AutoReplyRule, rule_id) or abort(404)
    db.session.delete(rule)
    db.session.commit()
    flash(_("ルールを削除しました。"), "success")
    return redirect(url_for("autoreply.rules"))


@bp.route("/settings", methods=["GET", "POST"])
@login_required
@require("autoreply.edit")
def settings():
    """Greeting (挨拶メッセージ), fallback answer and the hand-off to staff."""
    clinic = current_clinic()
    current = services.get_settings(clinic.id)
    check = None
    if request.method == "POST":
        texts = {f"greeting{n}": t for n, t in enumerate(request.form.getlist("greeting")) if t.strip()}
        check = adcheck_gate(clinic, {**texts, "fallback": request.form.get("fallback", "")}, request.form)
        _fill_settings(current, request.form)
        if check.passed:
            check.record("auto_reply_settings", current.id)
            db.session.commit()
            flash(_("設定を保存しました。"), "success")
            return redirect(url_for("autoreply.rules"))
        for problem in check.problems():
            flash(problem, "error")
    page = render_template(
        "autoreply/settings.html",
        gate=check,
        settings=current,
        variables=VARIABLES,
        preview=services.greeting(clinic),
        emergency_keywords=emergency.keywords_of(current),
        emergency_reply=emergency.emergency_reply(clinic),
    )
    db.session.rollback()  # a refused form is shown as typed, and not saved
    return page


def _fill_settings(current, form) -> None:
    current.greeting_messages = _texts(form, "greeting")
    current.greeting_shows_closures = bool(form.get("greeting_shows_closures"))
    current.fallback_messages = _texts(form, "fallback")
    current.handoff_phrases = _lines(form.get("handoff_phrases", ""))
    current.handoff_reply = form.get("handoff_reply", "").strip()
    current.handoff_resume_hours = min(parse_id(form.get("handoff_resume_hours", "")) or 0, MAX_RESUME_HOURS)
    current.emergency_keywords = _lines(form.get("emergency_keywords", "")) or None  # blank: default


@bp.post("/conversations/<line_user_id>/resume")
@login_required
@require("chat.reply")
def resume(line_user_id: str):
    state = services.resume_bot(current_clinic().id, line_user_id)
    if state is None:
        abort(404)
    friend = db.session.scalar(sa.select(Friend.id).where(Friend.line_user_id == line_user_id))
    record("autoreply.resume", target_type="friend", target_id=friend, details={"urgent_cleared": True})
    db.session.commit()
    flash(_("自動応答を再開しました。"), "success")
    return redirect(url_for("autoreply.rules"))
