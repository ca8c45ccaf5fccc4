"""Login, two-factor enrolment and verification, logout; the session rules for every request."""

from __future__ import annotations

import time

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from saas.audit.services import record as audit
from saas.auth import services
from saas.common import utcnow
from saas.extensions import db, login_manager

bp = Blueprint("auth", __name__, url_prefix="/auth")

OPEN_ENDPOINTS = {"auth.login", "auth.logout", "static", "vendor", "health.healthz"}
TWO_FACTOR_ENDPOINTS = {"auth.two_factor", "auth.enrol_two_factor"}


class LoginForm(FlaskForm):
    email = EmailField(_l("メールアドレス"), validators=[DataRequired()])
    password = PasswordField(_l("パスワード"), validators=[DataRequired()])


class CodeForm(FlaskForm):
    code = StringField(_l("確認コード（6桁）"), validators=[DataRequired(), Length(min=6, max=8)])


@login_manager.user_loader
def load_user(user_id: str):
    from saas.auth.models import User

    return db.session.get(User, int(user_id))


@login_manager.unauthorized_handler
def unauthorized():
    return redirect(url_for("auth.login", next=request.full_path))


def _start_session(user) -> None:
    session.clear()  # a fresh session on every login: no fixation
    login_user(user)
    session.permanent = True
    session["two_factor_ok"] = False
    session["last_seen"] = time.time()
    user.last_login_at = utcnow()
    audit("login.success", actor=user)
    db.session.commit()


def _audit_login_failure(email: str, reason: str) -> None:
    known = services.get_user_by_email(email or "")
    audit("login.failure", actor=known, actor_email=(email or "").strip().lower()[:254], details={"reason": reason})


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return url_for("portal.home")


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = services.authenticate(form.email.data, form.password.data, request.remote_addr or "-")
        except services.LoginThrottled:
            _audit_login_failure(form.email.data, "throttled")
            db.session.commit()
            flash(
                _(
                    "ログインの失敗が続いたため、一時的にログインを停止しています。1分ほど待ってから再度お試しください。"
                ),
                "error",
            )
            return render_template("auth/login.html", form=form), 429
        if user is None:
            _audit_login_failure(form.email.data, "bad_credentials")
            db.session.commit()
            flash(_("メールアドレスまたはパスワードが正しくありません。"), "error")
            return render_template("auth/login.html", form=form), 401
        _start_session(user)
        session["next"] = _safe_next(request.args.get("next"))
        if user.needs_two_factor:
            endpoint = "auth.two_factor" if user.has_two_factor else "auth.enrol_two_factor"
            return redirect(url_for(endpoint))
        return redirect(session.pop("next"))
    return render_template("auth/login.html", form=form)


@bp.route("/two-factor", methods=["GET", "POST"])
def two_factor():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    if not current_user.has_two_factor:
        return redirect(url_for("auth.enrol_two_factor"))
    form = CodeForm()
    if form.validate_on_submit():
        if services.verify_totp(current_user, form.code.data):
            session["two_factor_ok"] = True
            audit("two_factor.success")
            db.session.commit()
            return redirect(session.pop("next", url_for("portal.home")))
        audit("two_factor.failure", commit=True)
        flash(_("確認コードが正しくありません。認証アプリの最新のコードを入力してください。"), "error")
    return render_template("auth/two_factor.html", form=form)


@bp.route("/two-factor/enrol", methods=["GET", "POST"])
def enrol_two_factor():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    form = CodeForm()
    if request.method == "GET" or not current_user.totp_secret or current_user.has_two_factor:
        if current_user.has_two_factor and session.get("two_factor_ok"):
            return redirect(url_for("portal.home"))
        if not current_user.has_two_factor:
            services.start_totp_enrolment(current_user)
            db.session.commit()
    elif form.validate_on_submit():
        if services.confirm_totp(current_user, form.code.data):
            session["two_factor_ok"] = True
            audit("two_factor.enrolled")
            db.session.commit()
            flash(_("二要素認証を設定しました。"), "success")
            return redirect(session.pop("next", url_for("portal.home")))
        flash(_("確認コードが正しくありません。もう一度お試しください。"), "error")
    return render_template(
        "auth/enrol_two_factor.html",
        form=form,
        qr=services.totp_qr_data_uri(current_user),
        secret=current_user.totp_secret,
    )


@bp.route("/logout", methods=["POST"])
def logout():
    if current_user.is_authenticated:
        audit("logout", commit=True)
    logout_user()
    session.clear()
    flash(_("ログアウトしました。"), "success")
    return redirect(url_for("auth.login"))


@bp.before_app_request
def enforce_session_rules():
    """Idle timeout and the two-factor gate, for every request of a signed-in user."""
    if request.endpoint in OPEN_ENDPOINTS or not current_user.is_authenticated:
        return None
    idle_limit = current_app.config["SESSION_IDLE_MINUTES"] * 60
    if time.time() - session.get("last_seen", 0) > idle_limit:
        audit("logout", details={"reason": "idle_timeout"}, commit=True)
        logout_user()
        session.clear()
        flash(_("一定時間操作がなかったため、ログアウトしました。もう一度ログインしてください。"), "info")
        return redirect(url_for("auth.login", next=request.full_path))
    session["last_seen"] = time.time()
    if current_user.needs_two_factor and not session.get("two_factor_ok"):
        if request.endpoint in TWO_FACTOR_ENDPOINTS:
            return None
        endpoint = "auth.two_factor" if current_user.has_two_factor else "auth.enrol_two_factor"
        return redirect(url_for(endpoint))
    return None
