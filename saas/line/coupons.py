"""Coupon calls (``/v2/bot/coupon``), in the style of :mod:`saas.line.client`.

line-bot-sdk 3.27 has the coupon models and API methods, so coupons are passed as LINE's JSON
shape (``CouponCreateRequest`` as a dict), checked by the SDK before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass

from linebot.v3.messaging import CouponCreateRequest

from saas.line.client import _call, _translated, messaging_api


@dataclass(frozen=True)
class LineCoupon:
    coupon_id: str
    title: str
    status: str  # DRAFT | RUNNING | CLOSED
    start_timestamp: int | None
    end_timestamp: int | None


def create(clinic, coupon: dict) -> str:
    """Create a coupon on LINE from its JSON object; returns LINE's ``couponId``."""
    with _translated():
        request = CouponCreateRequest.from_dict(coupon)
    return _call(messaging_api(clinic).create_coupon, request).coupon_id


def get(clinic, coupon_id: str) -> LineCoupon:
    """One coupon as LINE has it now."""
    found = _call(messaging_api(clinic).get_coupon_detail, coupon_id)
    return LineCoupon(found.coupon_id, found.title, found.status, found.start_timestamp, found.end_timestamp)


def list_ids(clinic, status: list[str] | None = None) -> list[tuple[str, str]]:
    """Every coupon of the channel as (couponId, title), following LINE's pages."""
    found, start = [], None
    while True:
        page = _call(messaging_api(clinic).list_coupon, status=status, start=start, limit=100)
        found += [(item.coupon_id, item.title) for item in page.items or []]
        start = page.next
        if not start:
            return found


def close(clinic, coupon_id: str) -> None:
    """Stop the coupon on LINE (it stays visible to those who have it, marked as ended)."""
    _call(messaging_api(clinic).close_coupon, coupon_id)
