"""Portal pages of onboarding: the agency's wizard (new clinic → LINE → starting manifest → profile
and schedule → staff → go-live checklist), the clinic profile page and the clinic's LINE plan."""

from __future__ import annotations

import re

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, send_from_directory, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from saas.audit.services import changes, record
from saas.auth.roles import ROLE_LABELS
from saas.common import parse_id
from saas.extensions import db
from saas.manifests.apply import ManifestError
from saas.members import services as members
from saas.onboarding import logos, services
from saas.portal import menu
from saas.quota.plans import load_plans, plan_for_clinic, set_clinic_plan
from saas.schedule import services as schedule
from saas.schedule.services import weekly_text
from saas.security.limits import body_limit
from saas.tenancy.access import current_clinic, require
from saas.tenancy.services import roles_at

bp = Blueprint("onboarding", __name__)
STEP_LABELS = {
    "line": _l("LINE公式アカウントの連携"),
    "profile": _l("医院情報（住所・電話番号）"),
    "schedule": _l("診療時間"),
    "greeting": _l("挨拶メッセージ"),
    "richmenu": _l("リッチメニューの反映"),
    "faq": _l("よくある質問（自動応答）"),
    "booking": _l("予約の設定"),
    "plan": _l("LINEのプラン"),
    "staff": _l("スタッフの招待"),
    "billing": _l("ご契約・お支払い"),
}


@bp.route("/onboarding/new", methods=["GET", "POST"])
@login_required
def new_clinic():
    """Step 1: the clinic, under an organization the user administers."""
    organizations = services.organizations_for(current_user)
    if not organizations:
        abort(404)
    error = None
    if request.method == "POST":
        chosen = {str(o.id): o for o in organizations}.get(request.form.get("organization_id", ""))
        result = (
            services.create_clinic(chosen, request.form.get("name", ""), request.form.get("slug", ""))
            if chosen
            else _("法人を選んでください")
        )
        if not isinstance(result, str):
            record(
                "clinic.create",
                clinic_id=result.id,
                target_type="clinic",
                target_id=result.id,
                details={"organization": chosen.slug},
            )
            db.session.commit()
            flash(_("「%(n)s」を作成しました。続けてLINE公式アカウントを連携してください。", n=result.name), "success")
            return redirect(url_for(".wizard", clinic=result.slug))
        error = result
    page = render_template("onboarding/new.html", organizations=organizations, error=error, form=request.form)
    return page, 422 if error else 200


@bp.get("/c/<clinic>/onboarding")
@login_required
@require("clinic.settings")
def wizard():
    """Where the clinic stands, with the hours and the staff invitation done right here."""
    return _wizard_page()


def _wizard_page(status: int = 200, **extra):
    clinic = current_clinic()
    steps = services.checklist(clinic)
    page = render_template(
        "onboarding/wizard.html", steps=steps, labels=STEP_LABELS, clinic=clinic,
        week=schedule.weekly_blocks(clinic.id), rows_per_day=schedule.ROWS_PER_DAY,
        settings=schedule.get_settings(clinic.id), roles=members.assignable_roles(roles_at(current_user, clinic)),
        role_labels=ROLE_LABELS, invitations=members.pending_invitations(clinic), **extra,
    )  # fmt: skip
    db.session.rollback()  # the checklist created default settings rows only to read them
    return page, status


@bp.post("/c/<clinic>/onboarding/schedule")
@login_required
@require("schedule.edit")
def wizard_schedule():
    """The weekly hours, saved from the wizard (the same timetable as 診療スケジュール)."""
    clinic = current_clinic()
    blocks, errors = schedule.blocks_from_form(request.form)
    if errors:
        return _wizard_page(422, schedule_errors=errors)
    holidays = bool(request.form.get("closed_on_public_holidays"))
    schedule.replace_weekly(clinic.id, blocks, closed_on_public_holidays=holidays)
    record("schedule.weekly", target_type="clinic", target_id=clinic.id,
           details={"blocks": len(blocks), "closed_on_public_holidays": holidays})  # fmt: skip
    db.session.commit()
    flash(_("診療時間を保存しました。自動応答と挨拶メッセージにすぐ反映されます。"), "success")
    return redirect(url_for(".wizard", _anchor="wizard-schedule"))


@bp.post("/c/<clinic>/onboarding/invite")
@login_required
@require("members.manage")
def wizard_invite():
    """Invite one of the clinic's staff (saas.members): the one-time link is shown once, here."""
    clinic = current_clinic()
    email, role = (request.form.get("email") or "").strip(), request.form.get("role", "")
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email) or len(email) > 254:
        return _wizard_page(422, invite_error=_("メールアドレスの形式が正しくありません"), invite_email=email)
    try:
        _invitation, token = members.invite(clinic, email, role, current_user, roles_at(current_user, clinic))
    except members.MembershipChangeRefused as refused:
        return _wizard_page(403, invite_error=str(refused), invite_email=email)
    link = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + url_for("members.accept", token=token)
    flash(_("招待を作成しました。下のリンクを招待する方にお送りください（72時間有効・1回限り）。"), "success")
    page, status = _wizard_page(new_link=link, invited_email=email)
    return page, status, {"Cache-Control": "no-store"}


@bp.route("/c/<clinic>/onboarding/manifest", methods=["GET", "POST"])
@login_required
@require("clinic.settings")
@body_limit(256 * 1024)
def manifest():
    """A starting manifest: a starter from the library or uploaded YAML; the dry-run diff first."""
    clinic, outcome, problem = current_clinic(), None, None
    form = request.form
    if request.method == "POST":
        upload = request.files.get("file")
        text = form.get("yaml") or (upload.read().decode("utf-8", "replace") if upload else "")
        name = upload.filename if upload and upload.filename and not form.get("yaml") else _("貼り付けたYAML")
        try:
            spec = services.section_from(clinic, starter=form.get("starter") or None, text=text, name=name)
            outcome = services.try_section(clinic, spec, dry_run=form.get("action") != "apply")
        except ManifestError as error:
            problem = error
        if outcome is not None and form.get("action") == "apply":
            record(
                "manifest.apply",
                target_type="clinic",
                target_id=clinic.id,
                details={"changes": outcome.changes[:100]},
                commit=True,
            )
            flash(_("マニフェストを適用しました（%(n)s件の変更）。", n=len(outcome.changes)), "success")
            return redirect(url_for(".wizard"))
    page = render_template(
        "onboarding/manifest.html", starters=services.starters(), outcome=outcome, problem=problem, form=form
    )
    return page, 422 if problem else 200


def _profile_from(form) -> dict:
    values = {name: (form.get(name) or "").strip() for name in services.PROFILE_FIELDS}
    values["name"] = (form.get("name") or "").strip()[:200]
    return values


@bp.route("/c/<clinic>/profile", methods=["GET", "POST"])
@login_required
@require("clinic.settings")
@body_limit(logos.MAX_BYTES + 64 * 1024)
def profile():
    """The clinic's profile (the manifest's ``profile`` fields), its hours from the schedule, its logo."""
    clinic, problem = current_clinic(), None
    if request.method == "POST":
        before = {name: getattr(clinic, name) for name in ("name", *services.PROFILE_FIELDS, "logo_url")}
        values = _profile_from(request.form)
        problem = _("院名を入力してください") if not values["name"] else None
        upload = request.files.get("logo")
        if problem is None and upload and upload.filename:
            try:
                name = logos.save(clinic.id, upload.read())
                values["logo_url"] = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + url_for(".logo", name=name)
            except logos.LogoProblem as error:
                problem = str(error)
        if problem is None:
            for field, value in values.items():
                setattr(clinic, field, value)
            record("clinic.profile", target_type="clinic", target_id=clinic.id, details=changes(before, values))
            db.session.commit()
            flash(_("医院情報を保存しました。"), "success")
            return redirect(url_for(".profile"))
    page = render_template("onboarding/profile.html", clinic=clinic, hours=weekly_text(clinic), problem=problem)
    return page, 422 if problem else 200


@bp.get("/logos/<name>")
def logo(name: str):
    """A clinic logo (public: patients' phones and LINE load it)."""
    return send_from_directory(logos.folder(), name, max_age=31536000)


@bp.route("/c/<clinic>/plan", methods=["GET", "POST"])
@login_required
@require("clinic.settings")
def plan():
    """The clinic's LINE plan (what `flask quota set-plan` sets), with whether extra messages are bought."""
    clinic = current_clinic()
    plans = load_plans()
    if request.method == "POST":
        code, extra = request.form.get("plan_code", ""), request.form.get("extra_allowed") == "1"
        cap = request.form.get("extra_cap", "").strip()
        chosen = next((p for p in plans if p.code == code), None)
        if chosen is None or (extra and not chosen.allows_extra) or (cap and parse_id(cap) is None):
            flash(_("プランと追加メッセージの設定を確認してください。"), "error")
        else:
            set_clinic_plan(clinic.id, code, extra_allowed=extra, extra_cap=parse_id(cap) if cap and extra else None)
            record(
                "quota.plan",
                target_type="clinic",
                target_id=clinic.id,
                details={"plan": code, "extra": extra, "cap": cap},
                commit=True,
            )
            flash(_("LINEのプランを保存しました。"), "success")
            return redirect(url_for(".plan"))
    page = render_template("onboarding/plan.html", plans=plans, current=plan_for_clinic(clinic.id))
    return page, 422 if request.method == "POST" else 200


menu.register("onboarding.wizard", _l("導入チェックリスト"), "✓", "clinic.settings", order=87)
menu.register("onboarding.profile", _l("医院情報"), "✎", "clinic.settings", order=88)
menu.register("onboarding.plan", _l("LINEのプラン"), "▤", "clinic.settings", order=89)
