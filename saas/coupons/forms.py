"""Reading the coupon form into :class:`saas.coupons.services.CouponValues`."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from flask_babel import gettext as _

from saas.common import parse_id
from saas.coupons.models import Target
from saas.coupons.services import CouponProblem, CouponValues
from saas.delivery.forms import read_segment


def _date(text: str | None, label: str) -> date:
    try:
        return date.fromisoformat((text or "").strip())
    except ValueError as exc:
        raise CouponProblem(_("%(label)sを日付で入力してください。", label=label)) from exc


def _number(text: str | None, label: str, *, optional: bool = False) -> int | None:
    text = (text or "").strip()
    if not text and optional:
        return None
    number = parse_id(text)
    if number is None:
        raise CouponProblem(_("%(label)sは数字で入力してください。", label=label))
    return number


def read(form: Mapping) -> CouponValues:
    """The values of the coupon form; :class:`CouponProblem` for what cannot be read."""
    target = form.get("target", Target.ALL)
    segment: dict = {}
    if target == Target.SEGMENT:
        segment, problems = read_segment(form)
        if problems:
            raise CouponProblem(problems[0])
        if not segment:
            raise CouponProblem(_("セグメントの条件（タグなど）を1つ以上選んでください。"))
    reward_kind = form.get("reward_kind", "")
    needs_value = reward_kind in ("discount_percent", "discount_yen")
    return CouponValues(
        title=form.get("title", ""),
        purpose=form.get("purpose", ""),
        service=form.get("service", ""),
        reward_kind=reward_kind,
        reward_value=_number(form.get("reward_value"), _("割引")) if needs_value else 0,
        starts_on=_date(form.get("starts_on"), _("開始日")),
        ends_on=_date(form.get("ends_on"), _("終了日")),
        description=form.get("description", ""),
        usage_condition=form.get("usage_condition", ""),
        total_limit=_number(form.get("total_limit"), _("全体の利用上限"), optional=True),
        per_patient_limit=_number(form.get("per_patient_limit") or "1", _("1人あたりの利用回数")),
        target=target,
        segment=segment,
    )
