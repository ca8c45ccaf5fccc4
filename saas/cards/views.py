"""Shop card pages of the portal: settings and rewards, and the desk's rotating stamp QR."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from saas.cards import patient, services
from saas.cards.models import CardSettings
from saas.common import parse_id
from saas.coupons.qr import qr_svg
from saas.extensions import db
from saas.friends.models import Friend
from saas.portal import menu
from saas.security.headers import CAMERA_PERMISSIONS_POLICY
from saas.tenancy.access import current_clinic, require

bp = Blueprint("cards", __name__)
staff = Blueprint("staff", __name__, url_prefix="/c/<clinic>/cards")


def _number(text: str | None, label: str, *, optional: bool = False) -> int | None:
    text = (text or "").strip()
    if not text and optional:
        return None
    number = parse_id(text)
    if number is None:
        raise services.CardProblem(_("%(label)sは数字で入力してください。", label=label))
    return number


def _read_rewards(form) -> list[services.RewardSpec]:
    wanted = []
    for threshold, coupon_id in zip(form.getlist("reward_threshold"), form.getlist("reward_coupon"), strict=False):
        if threshold.strip() or coupon_id.strip():
            wanted.append(
                services.RewardSpec(_number(threshold, _("特典のポイント")), _number(coupon_id, _("特典のクーポン")))
            )
    return wanted


def _read_settings(settings: CardSettings, form) -> list[services.RewardSpec]:
    settings.enabled = form.get("enabled") == "1"
    settings.name = (form.get("name") or settings.name).strip()[:60]
    settings.points_per_visit = _number(form.get("points_per_visit"), _("1回の来院のポイント"))
    settings.expiry_days = _number(form.get("expiry_days"), _("ポイントの有効期限"), optional=True)
    settings.qr_seconds = _number(form.get("qr_seconds"), _("受付QRの切り替え間隔"))
    settings.restart_after_last_reward = form.get("restart_after_last_reward") == "1"
    return _read_rewards(form)


def _settings_page(status: int = 200):
    clinic = current_clinic()
    return render_template(
        "cards/settings.html", settings=services.get_settings(clinic.id), rewards=services.rewards(),
        coupons=services.reward_coupons(), figures=services.figures(),
    ), status  # fmt: skip


@staff.get("/")
@login_required
@require("coupons.manage")
def settings():
    """The clinic's card: points per visit, rewards at thresholds, expiry, the desk QR's rotation."""
    return _settings_page()


@staff.post("/")
@login_required
@require("coupons.manage")
def save_settings():
    """Store the card settings and rewards."""
    found = services.get_settings(current_clinic().id)
    try:
        wanted = _read_settings(found, request.form)
        services.save_settings(found, wanted, current_user)
    except services.CardProblem as problem:
        db.session.rollback()
        flash(str(problem), "error")
        return _settings_page(400)
    flash(_("ショップカードの設定を保存しました。"), "success")
    return redirect(url_for(".settings"))


def _desk_qr() -> dict:
    clinic = current_clinic()
    found = services.get_settings(clinic.id)
    url = services.stamp_url(clinic, services.desk_token(clinic))
    return {"qr": qr_svg(url, scale=8), "seconds": found.qr_seconds, "url": url}


@staff.get("/desk")
@login_required
@require("coupons.redeem")
def desk():
    """The reception tablet's stamp QR (a new one every ``qr_seconds``), and staff's card scan."""
    found = services.get_settings(current_clinic().id)
    page = render_template("cards/desk.html", settings=found, **(_desk_qr() if found.enabled else {}))
    return page, 200, {"Permissions-Policy": CAMERA_PERMISSIONS_POLICY}


@staff.get("/desk/qr")
@login_required
@require("coupons.redeem")
def desk_qr():
    """The next QR (htmx swaps it in when the current one's time is up)."""
    if not services.get_settings(current_clinic().id).enabled:
        return "", 204
    return render_template("cards/_desk_qr.html", **_desk_qr())


@staff.post("/desk/scan")
@login_required
@require("coupons.redeem")
def scan():
    """Staff scanned the patient's card QR: one stamp for today's visit."""
    clinic = current_clinic()
    try:
        card = services.card_from_token(clinic, request.form.get("card", ""))
        stamped = services.stamp(db.session.get(Friend, card.friend_id), method="staff_scan", actor=current_user)
    except services.StampRefused as refused:
        flash(refused.reason, "error")
        return redirect(url_for(".desk")), 303
    flash(_("スタンプを押しました（現在%(points)sポイント）。", points=stamped.card.points), "success")
    for coupon in stamped.rewards:
        flash(_("特典「%(title)s」をお渡ししました。", title=coupon.title), "success")
    return redirect(url_for(".desk")), 303


menu.register("cards.staff.desk", _l("スタンプ受付"), "◎", permission="coupons.redeem", order=17)
menu.register("cards.staff.settings", _l("ショップカード"), "◎", permission="coupons.manage", order=25)
bp.register_blueprint(staff)
bp.register_blueprint(patient.bp)
