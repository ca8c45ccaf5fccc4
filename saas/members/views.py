"""Members page of a clinic (invite, change role, remove) and the invitation acceptance page."""

from __future__ import annotations

import requests
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length, Regexp

from saas.audit.services import record
from saas.auth.redirects import local_target
from saas.auth.roles import ROLE_LABELS, SCOPE_LABELS
from saas.members import services
from saas.portal import menu
from saas.tenancy.access import current_clinic, require
from saas.tenancy.services import roles_at

bp = Blueprint("members", __name__)
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"

menu.register("members.index", _l("スタッフ管理"), "☺", permission="members.manage", order=85)


class InviteForm(FlaskForm):
    email = EmailField(
        _l("メールアドレス"),
        validators=[
            DataRequired(),
            Regexp(EMAIL_PATTERN, message=_l("メールアドレスの形式が正しくありません")),
            Length(max=254),
        ],
    )
    role = SelectField(_l("権限"), validators=[DataRequired()])


class AccountForm(FlaskForm):
    """A new account for the invitee (name, password); existing users sign in instead."""

    name = StringField(_l("お名前"), validators=[DataRequired(), Length(max=200)])
    password = PasswordField(_l("パスワード"), validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(
        _l("パスワード（確認）"), validators=[DataRequired(), EqualTo("password", _l("一致しません"))]
    )


def _actor_roles() -> set[str]:
    return roles_at(current_user, current_clinic())


def _invite_form() -> InviteForm:
    roles = services.assignable_roles(_actor_roles())
    form = InviteForm(role=roles[0].value)  # the least powerful role unless the admin picks another
    form.role.choices = [(r.value, ROLE_LABELS[r]) for r in roles]
    return form


def _render_index(form: InviteForm, new_link: str | None = None, status: int = 200):
    clinic = current_clinic()
    return (
        render_template(
            "members/index.html",
            rows=services.members_of(clinic),
            invitations=services.pending_invitations(clinic),
            form=form,
            new_link=new_link,
            role_choices=[(r.value, ROLE_LABELS[r]) for r in services.assignable_roles(_actor_roles())],
            scope_labels=SCOPE_LABELS,
        ),
        status,
    )


@bp.get("/c/<clinic>/members/")
@login_required
@require("members.manage")
def index():
    return _render_index(_invite_form())


@bp.post("/c/<clinic>/members/invite")
@login_required
@require("members.manage")
def invite():
    form = _invite_form()
    if not form.validate_on_submit():
        return _render_index(form, status=400)
    try:
        _invitation, token = services.invite(
            current_clinic(), form.email.data, form.role.data, current_user, _actor_roles()
        )
    except services.MembershipChangeRefused as refused:
        flash(_(str(refused)), "error")
        return _render_index(form, status=403)
    link = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + url_for("members.accept", token=token)
    flash(_("招待を作成しました。下のリンクを招待する方にお送りください（72時間有効・1回限り）。"), "success")
    return _render_index(_invite_form(), new_link=link)


@bp.post("/c/<clinic>/members/<int:membership_id>/role")
@login_required
@require("members.manage")
def change_role(membership_id: int):
    role = request.form.get("role", "")
    return _membership_change(
        lambda: services.change_role(current_clinic(), membership_id, role, current_user, _actor_roles()),
        _("権限を変更しました。"),
    )


@bp.post("/c/<clinic>/members/<int:membership_id>/remove")
@login_required
@require("members.manage")
def remove(membership_id: int):
    return _membership_change(
        lambda: services.remove_membership(current_clinic(), membership_id, current_user, _actor_roles()),
        _("このクリニックへのアクセス権を削除しました。"),
    )


def _membership_change(change, done_message: str):
    """Run a membership change: unknown ids are a 404, refused changes are explained."""
    try:
        change()
    except LookupError:
        abort(404)
    except services.MembershipChangeRefused as refused:
        flash(_(str(refused)), "error")
    else:
        flash(done_message, "success")
    return redirect(url_for("members.index")), 303


@bp.post("/c/<clinic>/members/invitations/<int:invitation_id>/revoke")
@login_required
@require("members.manage")
def revoke(invitation_id: int):
    try:
        services.revoke_invitation(current_clinic(), invitation_id)
    except LookupError:
        abort(404)
    flash(_("招待を取り消しました。"), "success")
    return redirect(url_for("members.index")), 303


@bp.post("/c/<clinic>/members/users/<int:user_id>/reset-two-factor")
@login_required
@require("members.manage")
def reset_two_factor(user_id: int):
    return _membership_change(
        lambda: services.reset_two_factor(current_clinic(), user_id, current_user, _actor_roles()),
        _(
            "二要素認証をリセットしました。次回ログイン時に再設定が必要です（ログイン中の端末はすべてログアウトしました）。"
        ),
    )


@bp.post("/c/<clinic>/members/users/<int:user_id>/sign-out")
@login_required
@require("members.manage")
def sign_out_everywhere(user_id: int):
    return _membership_change(
        lambda: services.sign_out_everywhere(current_clinic(), user_id, current_user, _actor_roles()),
        _("このスタッフのすべての端末をログアウトしました。"),
    )


def _render_accept(invitation, form: AccountForm, status: int = 200):
    signed_in = current_user.is_authenticated
    return (
        render_template(
            "members/accept.html",
            form=form,
            invitation=invitation,
            signed_in_as_invitee=signed_in and current_user.email == invitation.email,
            signed_in_as_other=signed_in and current_user.email != invitation.email,
            clinic_name=_clinic_name(invitation.clinic_id),
            role_label=ROLE_LABELS.get(invitation.role, invitation.role),
            login_url=url_for("auth.login", next=url_for("members.accept", token=invitation_token())),
        ),
        status,
    )


def invitation_token() -> str:
    return request.view_args["token"]


@bp.route("/invitations/<token>", methods=["GET", "POST"])
def accept(token: str):
    """The same page whether or not the email has an account: sign in to accept, or create one."""
    try:
        invitation = services.usable_invitation(token)
    except services.InvitationUnusable as unusable:
        return render_template("members/accept.html", error=_(str(unusable))), 410
    form = AccountForm()
    if request.method == "POST" and request.form.get("action") == "accept":
        return _accept_signed_in(token, invitation, form)
    if form.validate_on_submit():
        try:
            services.prepare_account(token, name=form.name.data, password=form.password.data)
        except services.MembershipChangeRefused as refused:
            form.password.errors = [str(refused)]
            return _render_accept(invitation, form, 400)
        flash(_("メールアドレスとパスワードでログインすると、招待の承認を完了できます。"), "success")
        return redirect(url_for("auth.login", next=url_for("members.accept", token=token))), 303
    return _render_accept(invitation, form, 400 if request.method == "POST" else 200)


def _accept_signed_in(token: str, invitation, form: AccountForm):
    """Only a fully signed-in invitee (password, throttle and two-factor done) can accept."""
    from flask_wtf.csrf import validate_csrf
    from wtforms.validators import ValidationError

    try:
        validate_csrf(request.form.get("csrf_token"))
    except ValidationError:
        abort(400)
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login", next=url_for("members.accept", token=token))), 303
    try:
        membership = services.accept(token, current_user)
    except services.InvitationUnusable as unusable:
        return render_template("members/accept.html", error=_(str(unusable))), 410
    except services.MembershipChangeRefused as refused:
        flash(_(str(refused)), "error")
        return _render_accept(invitation, form, 403)
    flash(_("招待を承認しました。"), "success")
    return redirect(url_for("portal.clinic_dashboard", clinic=_clinic_slug(membership.clinic_id))), 303


def _clinic_slug(clinic_id: int) -> str:
    from saas.extensions import db
    from saas.tenancy.models import Clinic

    return db.session.get(Clinic, clinic_id).slug


def _clinic_name(clinic_id: int) -> str:
    from saas.extensions import db
    from saas.tenancy.models import Clinic

    clinic = db.session.get(Clinic, clinic_id)
    return clinic.name if clinic else ""


# ---- single sign-on (OpenID Connect, per agency) ------------------------------------------


@bp.app_template_global("sso_available")
def sso_available() -> bool:
    from saas.members import sso

    return sso.any_enabled()


@bp.post("/auth/sso/start")
def sso_start():
    from saas.members import sso

    email = request.form.get("email", "")
    provider = sso.provider_for_email(email)
    if provider is None:
        flash(
            _("このメールアドレスはシングルサインオンに対応していません。パスワードでログインしてください。"), "error"
        )
        return redirect(url_for("auth.login")), 303
    try:
        target = sso.authorization_url(provider, email, _safe_next(request.args.get("next")))
    except requests.RequestException:
        flash(_("認証サービスに接続できませんでした。しばらくしてからお試しください。"), "error")
        return redirect(url_for("auth.login")), 303
    return redirect(target), 303


@bp.get("/auth/sso/callback")
def sso_callback():
    from saas.auth.views import _after_password, _start_session
    from saas.members import sso

    try:
        user, provider, next_url = sso.complete(request.args)
    except (sso.SsoFailed, requests.RequestException) as failure:
        reason = getattr(failure, "reason", "sso_provider_unreachable")
        record("login.failure", actor_email=getattr(failure, "email", ""), details={"reason": reason}, commit=True)
        flash(_("シングルサインオンでのログインに失敗しました。管理者にお問い合わせください。"), "error")
        return redirect(url_for("auth.login")), 303
    _start_session(user)  # records login.success
    record("login.sso", actor=user, details={"provider_id": provider.id}, commit=True)
    return _after_password(user, next_url)


def _safe_next(target: str | None) -> str:
    return local_target(target) or url_for("portal.home")
