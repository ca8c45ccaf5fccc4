"""Login, two-factor enrolment and verification, logout; the session rules for every request."""

from __future__ import annotations

from flask import current_app, flash, g, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import EmailField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

import saas.auth.account  # noqa: F401  (registers the account pages on bp)
from saas.audit.services import record as audit
from saas.auth import services, sessions, throttle
from saas.auth.blueprint import bp
from saas.auth.redirects import local_target
from saas.common import utcnow
from saas.extensions import db, login_manager

__all__ = ["bp"]

OPEN_ENDPOINTS = {
    "auth.login",
    "auth.logout",
    "auth.forgot_password",
    "auth.reset_password",
    "static",
    "vendor",
    "health.healthz",
    "links.follow",  # a patient's tap on a short link: no staff session is read or extended
}
TWO_FACTOR_ENDPOINTS = {"auth.two_factor", "auth.enrol_two_factor"}


class LoginForm(FlaskForm):
    email = EmailField(_l("メールアドレス"), validators=[DataRequired(), Length(max=254)])
    password = PasswordField(_l("パスワード"), validators=[DataRequired(), Length(max=1024)])


class CodeForm(FlaskForm):
    code = StringField(_l("確認コード（6桁）"), validators=[DataRequired(), Length(min=6, max=24)])


@login_manager.user_loader
def load_user(user_id: str):
    """The signed-in user, only while the server's record of this session is open."""
    from saas.auth.models import User

    record = sessions.find(session.get("sid"), int(user_id))
    if record is None:
        return None
    g.staff_session = record
    return db.session.get(User, record.user_id)


@login_manager.unauthorized_handler
def unauthorized():
    return redirect(url_for("auth.login", next=request.full_path))


def _start_session(user) -> None:
    """A fresh session on every login (no fixation), recorded on the server."""
    session.clear()
    token = sessions.start(user)
    db.session.flush()
    session["sid"] = token
    login_user(user)
    session["two_factor_ok"] = False
    user.last_login_at = utcnow()
    audit("login.success", actor=user)
    db.session.commit()
    if not user.needs_two_factor:
        _complete_sign_in(two_factor_done=False)


def _complete_sign_in(*, two_factor_done: bool = True) -> None:
    """Password and (where required) the second factor are done: the session is fully signed in.

    ``two_factor_ok`` records only a real second factor: a viewer promoted to admin while signed
    in meets the two-factor gate on the next request.
    """
    session["two_factor_ok"] = two_factor_done
    record = sessions.find(session.get("sid"), current_user.id)
    if record is not None:
        sessions.mark_verified(record)
    db.session.commit()


def _audit_login_failure(email: str, reason: str) -> None:
    known = services.get_user_by_email(email or "")
    audit("login.failure", actor=known, actor_email=(email or "").strip().lower()[:254], details={"reason": reason})


def _safe_next(target: str | None) -> str:
    return local_target(target) or url_for("portal.home")


def _address() -> str:
    return request.remote_addr or "-"


@bp.route("/login", methods=["GET", "POST"])
def login():
    form = LoginForm()
    if form.validate_on_submit():
        try:
            user = services.authenticate(form.email.data, form.password.data, _address())
        except throttle.Throttled as paused:
            _audit_login_failure(form.email.data, f"throttled:{paused.reason}")
            db.session.commit()
            flash(throttle.pause_message(paused), "error")
            return render_template("auth/login.html", form=form), 429
        if user is None:
            _audit_login_failure(form.email.data, "bad_credentials")
            db.session.commit()
            flash(_("メールアドレスまたはパスワードが正しくありません。"), "error")
            return render_template("auth/login.html", form=form), 401
        _start_session(user)
        return _after_password(user, _safe_next(request.args.get("next")))
    return render_template("auth/login.html", form=form)


def _after_password(user, next_url: str):
    """Where a user goes once the password (or SSO) step succeeded."""
    session["next"] = next_url
    if user.needs_two_factor:
        return redirect(url_for("auth.two_factor" if user.has_two_factor else "auth.enrol_two_factor"))
    return redirect(session.pop("next"))


def _check_code(user, code: str) -> str | None:
    """'totp' or 'recovery' when the code is right, else None."""
    if services.looks_like_recovery_code(code):
        return "recovery" if services.use_recovery_code(user, code) else None
    return "totp" if services.verify_totp(user, code) else None


@bp.route("/two-factor", methods=["GET", "POST"])
def two_factor():
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    if not current_user.has_two_factor:
        return redirect(url_for("auth.enrol_two_factor"))
    form = CodeForm()
    if not form.validate_on_submit():
        return render_template("auth/two_factor.html", form=form)
    try:
        throttle.ensure_totp_allowed(current_user.id, _address())
    except throttle.Throttled as paused:
        audit("two_factor.throttled", details={"reason": paused.reason}, commit=True)
        flash(throttle.pause_message(paused), "error")
        return render_template("auth/two_factor.html", form=form), 429
    kind = _check_code(current_user, form.code.data)
    if kind is None:
        throttle.record_totp_failure(current_user.id, _address())
        audit("two_factor.failure", commit=True)
        flash(_("確認コードが正しくありません。認証アプリの最新のコードを入力してください。"), "error")
        return render_template("auth/two_factor.html", form=form), 401
    throttle.clear_totp_failures(current_user.id, _address())
    if kind == "recovery":
        left = services.unused_recovery_codes(current_user)
        audit("two_factor.recovery_code_used", details={"codes_left": left})
        flash(_("リカバリーコードでログインしました。残り%(n)s個です。", n=left), "warning")
    audit("two_factor.success", details={"method": kind})
    _complete_sign_in()
    return redirect(session.pop("next", url_for("portal.home")))


@bp.route("/two-factor/enrol", methods=["GET", "POST"])
def enrol_two_factor():
    """First enrolment only: an enrolled user never sees the key again (an admin can reset it)."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    if current_user.has_two_factor:
        return redirect(url_for("portal.home" if session.get("two_factor_ok") else "auth.two_factor"))
    form = CodeForm()
    if not current_user.totp_secret:
        services.start_totp_enrolment(current_user)
        db.session.commit()
    if form.validate_on_submit():
        if services.confirm_totp(current_user, form.code.data):
            codes = services.issue_recovery_codes(current_user)
            audit("two_factor.enrolled")
            audit("two_factor.recovery_codes_issued", details={"count": len(codes)})
            _complete_sign_in()
            return render_template("auth/recovery_codes.html", codes=codes, next=session.pop("next", None))
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
        record = g.get("staff_session")
        if record is not None:
            sessions.end(record, "logout")
        audit("logout", commit=True)
    logout_user()
    session.clear()
    flash(_("ログアウトしました。"), "success")
    return redirect(url_for("auth.login"))


def _end_expired_session(reason: str):
    sessions.end(g.staff_session, reason)
    audit("logout", details={"reason": reason}, commit=True)
    logout_user()
    session.clear()
    if reason == "max_age":
        hours = current_app.config["SESSION_MAX_HOURS"]
        flash(
            _("ログインから%(n)s時間が経過したため、ログアウトしました。もう一度ログインしてください。", n=hours),
            "info",
        )
    else:
        flash(_("一定時間操作がなかったため、ログアウトしました。もう一度ログインしてください。"), "info")
    return redirect(url_for("auth.login", next=request.full_path))


@bp.before_app_request
def enforce_session_rules():
    """Server-side session record, idle and absolute limits, and the two-factor gate, on every request."""
    if request.endpoint in OPEN_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        if session.get("sid"):  # the server ended this session: logout elsewhere, revocation
            session.clear()
            flash(_("このセッションは終了しています。もう一度ログインしてください。"), "info")
        return None
    reason = sessions.expiry_reason(g.staff_session)
    if reason:
        return _end_expired_session(reason)
    sessions.touch(g.staff_session)
    if current_user.needs_two_factor and not session.get("two_factor_ok"):
        if request.endpoint in TWO_FACTOR_ENDPOINTS:
            return None
        endpoint = "auth.two_factor" if current_user.has_two_factor else "auth.enrol_two_factor"
        return redirect(url_for(endpoint))
    return None
