"""A signed-in user's own account pages (password, active sessions) and the password-reset flow."""

from __future__ import annotations

from flask import current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length

from saas import mail
from saas.audit.services import record as audit
from saas.auth import passwords, services, sessions, throttle
from saas.auth.blueprint import bp
from saas.extensions import db


class PasswordChangeForm(FlaskForm):
    current = PasswordField(_l("現在のパスワード"), validators=[DataRequired(), Length(max=1024)])
    password = PasswordField(_l("新しいパスワード"), validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(
        _l("新しいパスワード（確認）"), validators=[DataRequired(), EqualTo("password", _l("一致しません"))]
    )


class ForgotForm(FlaskForm):
    email = EmailField(_l("メールアドレス"), validators=[DataRequired(), Length(max=254)])


class ResetForm(FlaskForm):
    password = PasswordField(_l("新しいパスワード"), validators=[DataRequired(), Length(max=1024)])
    confirm = PasswordField(
        _l("新しいパスワード（確認）"), validators=[DataRequired(), EqualTo("password", _l("一致しません"))]
    )


def _address() -> str:
    return request.remote_addr or "-"


def user_inputs(user) -> list[str]:
    """Words a guesser would try first for this user: their email and name."""
    return [user.email, user.name or ""]


@bp.route("/password", methods=["GET", "POST"])
@login_required
def change_password():
    """Change one's password; every other session of the account ends."""
    form = PasswordChangeForm()
    if not form.validate_on_submit():
        return render_template("auth/password.html", form=form)
    try:
        throttle.ensure_login_allowed(current_user.email, _address(), known_address=True)
    except throttle.Throttled as paused:
        flash(throttle.pause_message(paused), "error")
        return render_template("auth/password.html", form=form), 429
    if not services.check_password(current_user, form.current.data):
        throttle.record_login_failure(current_user.email, _address())
        audit("password.change_failure", details={"reason": "bad_current_password"}, commit=True)
        form.current.errors = [_("現在のパスワードが正しくありません。")]
        return render_template("auth/password.html", form=form), 400
    problem = passwords.problem_with(form.password.data, user_inputs=user_inputs(current_user))
    if problem:
        form.password.errors = [problem]
        return render_template("auth/password.html", form=form), 400
    services.set_password(current_user, form.password.data, keep=g.staff_session)
    audit("password.change")
    db.session.commit()
    flash(_("パスワードを変更しました。他の端末のログインはすべて終了しました。"), "success")
    return redirect(url_for("auth.change_password")), 303


@bp.get("/sessions")
@login_required
def active_sessions():
    """The signed-in user's open sessions (browser, address, sign-in time), this one marked."""
    return render_template(
        "auth/sessions.html",
        rows=sessions.active_for(current_user.id),
        current_id=g.staff_session.id,
    )


@bp.post("/sessions/<int:session_id>/end")
@login_required
def end_session(session_id: int):
    if sessions.end_one_of(current_user.id, session_id, "ended_by_user"):
        audit("session.end", target_type="staff_session", target_id=session_id)
        db.session.commit()
        flash(_("選択したログインを終了しました。"), "success")
    return redirect(url_for("auth.active_sessions")), 303


@bp.post("/sessions/end-others")
@login_required
def end_other_sessions():
    ended = sessions.end_all_for(current_user.id, "ended_by_user", keep=g.staff_session)
    audit("session.end_others", details={"ended": ended})
    db.session.commit()
    flash(_("この端末以外のログインをすべて終了しました（%(n)s件）。", n=ended), "success")
    return redirect(url_for("auth.active_sessions")), 303


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password():
    """Ask for a reset link; the answer is the same whether or not the email has an account."""
    form = ForgotForm()
    if not form.validate_on_submit():
        return render_template("auth/forgot.html", form=form)
    email = form.email.data.strip().lower()
    try:
        throttle.ensure_reset_request_allowed(email, _address())
    except throttle.Throttled as paused:
        flash(throttle.pause_message(paused), "error")
        return render_template("auth/forgot.html", form=form), 429
    user = services.get_user_by_email(email)
    if user is not None and user.is_active:
        _send_reset_link(user)
    audit("password.reset_requested", actor=user, actor_email=email[:254], details={"known": user is not None})
    db.session.commit()
    flash(
        _("ご登録のメールアドレスであれば、パスワード再設定のご案内を送信しました。メールをご確認ください。"),
        "success",
    )
    return redirect(url_for("auth.login")), 303


def _send_reset_link(user) -> None:
    token = passwords.issue_reset(user)
    link = current_app.config["PUBLIC_BASE_URL"].rstrip("/") + url_for("auth.reset_password", token=token)
    minutes = current_app.config["PASSWORD_RESET_MINUTES"]
    body = _(
        "%(name)s 様\n\nTsunagu のパスワード再設定を受け付けました。次のリンクから新しいパスワードを設定してください"
        "（%(minutes)s分間有効・1回限り）。\n\n%(link)s\n\nお心当たりがない場合は、このメールを破棄してください。"
        "パスワードは変更されません。",
        name=user.name,
        minutes=minutes,
        link=link,
    )
    mail.send(user.email, _("【Tsunagu】パスワード再設定のご案内"), body)


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
def reset_password(token: str):
    """Set a new password from an emailed link: once, before it expires; all sessions end."""
    reset = passwords.usable_reset(token)
    if reset is None:
        return render_template("auth/reset.html", error=True), 410
    from saas.auth.models import User

    user = db.session.get(User, reset.user_id)
    form = ResetForm()
    if form.validate_on_submit():
        problem = passwords.problem_with(form.password.data, user_inputs=user_inputs(user))
        if problem:
            form.password.errors = [problem]
        elif not passwords.burn_reset(reset):
            db.session.rollback()
            return render_template("auth/reset.html", error=True), 410
        else:
            services.set_password(user, form.password.data)
            audit("password.reset", actor=user)
            db.session.commit()
            flash(_("パスワードを再設定しました。新しいパスワードでログインしてください。"), "success")
            return redirect(url_for("auth.login")), 303
    return render_template("auth/reset.html", form=form, error=False)
