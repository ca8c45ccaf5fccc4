"""Portal page: recurring reminder rules (vaccination, health check, recall)."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required

from saas.common import parse_id
from saas.extensions import db
from saas.friends.models import Tag
from saas.portal import menu
from saas.reminders.models import ReminderRule, RuleKind
from saas.tenancy.access import require

bp = Blueprint("reminders", __name__, url_prefix="/c/<clinic>/reminders")
menu.register("reminders.rules", _l("リマインド"), "⏰", "booking.manage", order=36)


@bp.route("/", methods=["GET", "POST"])
@login_required
@require("booking.manage")
def rules():
    """List the rules and add one."""
    if request.method == "POST":
        form = request.form
        try:
            months, hour = int(form.get("months_after", "")), int(form.get("send_hour", ""))
        except ValueError:
            months = hour = -1
        if (
            not form.get("name", "").strip()
            or not form.get("message", "").strip()
            or not 1 <= months <= 60
            or not 0 <= hour <= 23
        ):
            flash(_("名前・メッセージ・月数（1〜60）・時刻（0〜23）を入力してください"), "danger")
        else:
            tag_id = parse_id(form.get("tag_id", ""))
            if tag_id is not None and db.session.get(Tag, tag_id) is None:
                abort(400)
            kind = form.get("kind") if form.get("kind") in set(RuleKind) else RuleKind.RECALL
            db.session.add(
                ReminderRule(
                    name=form["name"].strip(),
                    kind=kind,
                    months_after=months,
                    send_hour=hour,
                    tag_id=tag_id,
                    message=form["message"].strip(),
                )
            )
            db.session.commit()
            flash(_("リマインドルールを追加しました。"), "success")
        return redirect(url_for(".rules"))
    return render_template(
        "booking/reminder_rules.html",
        rules=db.session.scalars(sa.select(ReminderRule).order_by(ReminderRule.id)).all(),
        tags=db.session.scalars(sa.select(Tag).order_by(Tag.name)).all(),
        kinds={"vaccination": _("予防接種"), "health_check": _("健康診断"), "recall": _("定期検診・リコール")},
    )


@bp.post("/<int:rule_id>/toggle")
@login_required
@require("booking.manage")
def toggle(rule_id: int):
    """Pause or resume a rule."""
    rule = db.session.get(ReminderRule, rule_id) or abort(404)
    rule.active = not rule.active
    db.session.commit()
    return redirect(url_for(".rules"))
