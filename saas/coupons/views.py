"""Coupon pages of the portal: the list with figures, the form, publish/close/send, the desk."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required

from saas import billing
from saas.adcheck.gate import gate
from saas.audit.services import record
from saas.cards import services as cards
from saas.common import utcnow
from saas.coupons import forms, patient, redemption, services, stats
from saas.coupons.models import Coupon, CouponStatus, Purpose, RewardKind, Target
from saas.delivery.describe import describe_segment
from saas.delivery.services import QueueUnavailable
from saas.extensions import db
from saas.friends import services as friends
from saas.portal import menu
from saas.security.headers import CAMERA_PERMISSIONS_POLICY
from saas.tenancy.access import current_clinic, require

bp = Blueprint("coupons", __name__)
staff = Blueprint("staff", __name__, url_prefix="/c/<clinic>/coupons")

PURPOSE_LABELS = {
    Purpose.SELF_PAY: _l("自費診療（美容・自費メニューなど）"),
    Purpose.CHECKUP: _l("健診・検診・予防接種（自費）"),
    Purpose.GOODS: _l("物販（サプリ・スキンケアなど）"),
    Purpose.INSURED: _l("保険診療"),
}
REWARD_LABELS = {
    RewardKind.DISCOUNT_PERCENT: _l("割引（％）"),
    RewardKind.DISCOUNT_YEN: _l("割引（円）"),
    RewardKind.FREE: _l("無料"),
    RewardKind.GIFT: _l("プレゼント"),
    RewardKind.OTHERS: _l("その他の特典"),
}
TARGET_LABELS = {
    Target.ALL: _l("友だち全員（配信同意あり）"),
    Target.SEGMENT: _l("セグメント（タグで絞り込み）"),
    Target.STEP: _l("ステップ配信のステップ"),
    Target.REWARD: _l("ショップカードの特典"),
}
STATUS_LABELS = {CouponStatus.DRAFT: _l("下書き"), CouponStatus.RUNNING: _l("配布中"), CouponStatus.CLOSED: _l("終了")}


@bp.app_context_processor
def _friend_section() -> dict:
    """The friend page asks for the friend's coupons and shop card when it renders."""
    return {"friend_coupons": friend_coupons}


def friend_coupons(friend) -> dict:
    """A friend's tickets (with their state) and shop card, for the friend page's small section."""
    tickets = [
        (c, t, services.STATE_LABELS[services.ticket_state(c, t)]) for c, t in services.coupons_of_friend(friend)
    ]
    card = cards.card_of(friend)
    return {"tickets": tickets, "card": card, "stamps": cards.stamps_of(card, 5) if card else []}


def _coupon_or_404(coupon_id: int) -> Coupon:
    return db.get_or_404(Coupon, coupon_id)  # another clinic's coupon is invisible: 404


def _targets() -> dict:
    shown = dict(TARGET_LABELS)
    if not services.step_targets_available():
        shown.pop(Target.STEP)
    return shown


@staff.get("/")
@login_required
@require("coupons.manage")
def index():
    """The clinic's coupons with tickets issued and uses, and the uses per day."""
    coupons = services.all_coupons()
    return render_template(
        "coupons/index.html", coupons=coupons, figures=services.figures(), statuses=STATUS_LABELS,
        targets=TARGET_LABELS, chart=stats.uses_per_day(),
    )  # fmt: skip


def _filled(coupon: Coupon | None) -> dict:
    """The form's values: what was posted, else the coupon's, else sensible defaults."""
    if request.method == "POST":
        return request.form.to_dict() | {"tag_ids": request.form.getlist("tag_ids")}
    if coupon is None or coupon.id is None:
        today = utcnow().date()
        return {"starts_on": today.isoformat(), "ends_on": (today + timedelta(days=30)).isoformat(),
                "per_patient_limit": "1", "target": Target.ALL, "reward_kind": RewardKind.DISCOUNT_PERCENT}  # fmt: skip
    values = services.values_of(coupon)
    filled = {k: "" if v is None else str(v) for k, v in vars(values).items() if k != "segment"}
    return filled | {"tag_ids": [str(t) for t in (values.segment or {}).get("tag_ids", [])],
                     "tag_match": (values.segment or {}).get("tag_match", "any")}  # fmt: skip


def _form_page(coupon: Coupon | None, status: int = 200, gate=None):
    return render_template(
        "coupons/form.html", coupon=coupon, purposes=PURPOSE_LABELS, rewards=REWARD_LABELS, targets=_targets(),
        tags=friends.clinic_tags(), filled=_filled(coupon), gate=gate,
    ), status  # fmt: skip


@staff.get("/new")
@login_required
@require("coupons.manage")
def new():
    """The empty coupon form."""
    return _form_page(None)


@staff.get("/<int:coupon_id>")
@login_required
@require("coupons.manage")
def detail(coupon_id: int):
    """One coupon: its state, figures per send, and (for a draft) the form."""
    coupon = _coupon_or_404(coupon_id)
    return render_template(
        "coupons/detail.html", coupon=coupon, statuses=STATUS_LABELS, targets=TARGET_LABELS,
        purposes=PURPOSE_LABELS, rewards=REWARD_LABELS, figures=services.figures().get(coupon.id),
        by_delivery=services.uses_by_delivery(coupon), segment=describe_segment(coupon.segment),
        patient_url=services.patient_url(coupon),
    )  # fmt: skip


@staff.get("/<int:coupon_id>/edit")
@login_required
@require("coupons.manage")
def edit(coupon_id: int):
    """The form of an existing coupon."""
    return _form_page(_coupon_or_404(coupon_id))


@staff.post("/")
@staff.post("/<int:coupon_id>/edit")
@login_required
@require("coupons.manage")
def save(coupon_id: int | None = None):
    """Create or change a coupon; refused for insured care, with the reason; the advertising check's
    findings acknowledged (warnings) or approved by an admin (blocks) before it is saved."""
    coupon = _coupon_or_404(coupon_id) if coupon_id else Coupon(created_by_id=current_user.id)
    check = None
    try:
        values = forms.read(request.form)
        services.check(values)
        texts = {"title": values.title, "description": values.description, "usage_condition": values.usage_condition}
        check = gate(current_clinic(), texts, request.form)
        if not check.passed:
            raise services.CouponProblem(" ".join(check.problems()))
        services.save(coupon, values)
    except services.CouponProblem as problem:
        db.session.rollback()
        flash(str(problem), "error")
        return _form_page(coupon if coupon_id else None, 400, gate=check)
    check.record("coupon", coupon.id)
    record("coupon.saved", target_type="coupon", target_id=coupon.id, details={"title": coupon.title})
    db.session.commit()
    flash(_("クーポン「%(title)s」を保存しました。", title=coupon.title), "success")
    return redirect(url_for(".detail", coupon_id=coupon.id))


def _act(coupon_id: int, action, done: str):
    coupon = _coupon_or_404(coupon_id)
    try:
        action(coupon)
    except services.CouponProblem as problem:
        flash(str(problem), "error")
    except QueueUnavailable:
        flash(_("配信の受付が一時的にできません。しばらくしてからもう一度お試しください。"), "error")
    else:
        flash(done, "success")
    return redirect(url_for(".detail", coupon_id=coupon.id))


@staff.post("/<int:coupon_id>/publish")
@login_required
@require("coupons.manage")
def publish(coupon_id: int):
    """Create the coupon on LINE and start it."""
    return _act(coupon_id, lambda c: services.publish(c, current_user), _("クーポンを公開しました。"))


@staff.post("/<int:coupon_id>/close")
@login_required
@require("coupons.manage")
def close(coupon_id: int):
    """End the coupon here and on LINE."""
    return _act(coupon_id, lambda c: services.close(c, current_user), _("クーポンの配布を終了しました。"))


@staff.post("/<int:coupon_id>/send")
@login_required
@require("messages.send")
def send(coupon_id: int):
    """Send the coupon to its target through the delivery pipeline, then show that delivery."""
    coupon = _coupon_or_404(coupon_id)
    try:
        sent = services.send(coupon, current_user)
    except services.CouponProblem as problem:
        flash(str(problem), "error")
        return redirect(url_for(".detail", coupon_id=coupon.id))
    except QueueUnavailable:
        flash(_("配信の受付が一時的にできません。しばらくしてからもう一度お試しください。"), "error")
        return redirect(url_for(".detail", coupon_id=coupon.id))
    except billing.MarketingPaused as paused:
        flash(_(str(paused)), "error")
        return redirect(url_for(".detail", coupon_id=coupon.id))
    if sent.approval_id:
        flash(_("もう一人のスタッフの承認を待っています。承認されるまで送信されません。"), "warning")
        return redirect(url_for("sendguard.approval", approval_id=sent.approval_id))
    flash(_("クーポンの配信を受け付けました。"), "success")
    return redirect(url_for("delivery.detail", delivery_id=sent.delivery_id))


def _desk(result=None, refused=None, status: int = 200):
    response = render_template("coupons/desk.html", result=result, refused=refused)
    return response, status, {"Permissions-Policy": CAMERA_PERMISSIONS_POLICY}


@staff.get("/desk")
@login_required
@require("coupons.redeem")
def desk():
    """The reception tablet: type the code (or scan the patient's QR) to redeem it."""
    return _desk()


@staff.post("/desk")
@login_required
@require("coupons.redeem")
def redeem():
    """Redeem one use of the code, or say why not (expired, used up, another clinic's)."""
    try:
        result = redemption.redeem(request.form.get("code", ""), current_user)
    except redemption.RedemptionRefused as refused:
        return _desk(refused=refused, status=409)
    return _desk(result=result)


menu.register("coupons.staff.index", _l("クーポン"), "✂", permission="coupons.manage", order=24)
menu.register("coupons.staff.desk", _l("クーポン受付"), "▣", permission="coupons.redeem", order=16)
bp.register_blueprint(staff)
bp.register_blueprint(patient.bp)
