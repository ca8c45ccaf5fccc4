"""Clinic settings page for the LINE channel: connect, see status, re-test."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import login_required
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Regexp

from saas.line import onboarding
from saas.portal import menu
from saas.tenancy.access import current_clinic, require

bp = Blueprint("line", __name__, url_prefix="/c/<clinic>/settings/line")


class ChannelForm(FlaskForm):
    channel_id = StringField(
        _l("チャネルID"), validators=[DataRequired(), Regexp(r"^\d{6,20}$", message=_l("数字のみで入力してください"))]
    )
    channel_secret = PasswordField(_l("チャネルシークレット"), validators=[DataRequired(), Length(min=16, max=64)])
    access_token = PasswordField(_l("チャネルアクセストークン（長期）"), validators=[DataRequired(), Length(max=1000)])


def _render(form: ChannelForm, check: onboarding.ConnectionCheck | None = None):
    clinic = current_clinic()
    return render_template(
        "channel/line.html", form=form, check=check, webhook_url=onboarding.webhook_url(clinic), clinic=clinic
    )


@bp.get("")
@login_required
@require("clinic.settings")
def settings():
    """Connection status, the webhook URL and the credentials form."""
    form = ChannelForm(data={"channel_id": current_clinic().line_channel_id or ""})
    return _render(form)


@bp.post("")
@login_required
@require("clinic.settings")
def connect():
    """Verify and store the channel, then set and test the webhook."""
    form = ChannelForm()
    if not form.validate_on_submit():
        return _render(form), 400
    try:
        check = onboarding.connect_channel(
            current_clinic(), form.channel_id.data, form.channel_secret.data, form.access_token.data
        )
    except onboarding.OnboardingError as exc:
        form.access_token.errors = [str(exc)]
        return _render(form), 400
    flash(_("LINE公式アカウントを連携しました。") if check.ok else check.problem, "success" if check.ok else "warning")
    return _render(ChannelForm(data={"channel_id": form.channel_id.data}), check)


@bp.post("/test")
@login_required
@require("clinic.settings")
def test():
    """Run LINE's webhook test again and show the outcome."""
    clinic = current_clinic()
    if not clinic.line_connected:
        flash(_("先にチャネル情報を登録してください。"), "error")
        return redirect(url_for("line.settings"))
    check = onboarding.check_connection(clinic)
    flash(_("接続テストに成功しました。") if check.ok else check.problem, "success" if check.ok else "warning")
    return _render(ChannelForm(data={"channel_id": clinic.line_channel_id or ""}), check)


menu.register("line.settings", _l("LINE連携"), "⚙", "clinic.settings", order=90)
