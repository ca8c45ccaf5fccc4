"""A clinic on the sandbox with a LINE Login channel, friends who consent, coupons, and a patient's
phone browser that signs in with LINE Login."""

from __future__ import annotations

from datetime import date, timedelta
from urllib.parse import urljoin

import requests
import sqlalchemy as sa

from saas.coupons import services
from saas.coupons.models import Coupon, CouponTicket
from saas.extensions import db
from saas.friends.models import Friend
from saas.tenancy.scoping import tenant_scope
from tests.booking.support import booking_clinic
from tests.delivery.support import add_friends


def coupon_clinic(sandbox, live_server, *, friends: int = 2, name: str = "つなぐ皮膚科") -> tuple:
    """(clinic, channel id, LINE user ids of consenting friends)."""
    clinic, channel, _ = booking_clinic(sandbox, live_server, name=name)
    return clinic, channel, add_friends(sandbox, clinic, friends)


def values(**changes) -> services.CouponValues:
    today = date.today()
    fields = {
        "title": "しみ取りレーザー 初回20%オフ",
        "purpose": "self_pay",
        "service": "しみ取りレーザー（自費）",
        "reward_kind": "discount_percent",
        "reward_value": 20,
        "starts_on": today - timedelta(days=1),
        "ends_on": today + timedelta(days=30),
        "usage_condition": "受付でこの画面をご提示ください",
    }
    return services.CouponValues(**(fields | changes))


def running_coupon(clinic, **changes) -> Coupon:
    """A coupon saved and published on LINE (the sandbox)."""
    with tenant_scope(clinic.id):
        coupon = services.save(Coupon(clinic_id=clinic.id), values(**changes))
        db.session.commit()
        services.publish(coupon)
        db.session.refresh(coupon)
        db.session.expunge(coupon)
    return coupon


def friend_of(clinic, user_id: str) -> Friend:
    with tenant_scope(clinic.id):
        friend = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == user_id))
        db.session.expunge(friend)
    return friend


def ticket_for(clinic, coupon: Coupon, user_id: str, delivery_id: int | None = None) -> CouponTicket:
    """The patient's ticket as their coupon page would issue it."""
    with tenant_scope(clinic.id):
        found = services.issue_ticket(
            db.session.get(Coupon, coupon.id), db.session.get(Friend, friend_of(clinic, user_id).id),
            delivery_id=delivery_id,
        )  # fmt: skip
        db.session.refresh(found)
        db.session.expunge(found)
    return found


PATIENT_BROWSER = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148 Safari Line/14.1.0"
)


class Phone:
    """The patient's LINE in-app browser: follows redirects, approves LINE Login as the patient."""

    def __init__(self, user_id: str):
        self.user_id = user_id
        self.http = requests.Session()
        self.http.headers["User-Agent"] = PATIENT_BROWSER  # counted as a tap by saas.links, unlike a bot

    def open(self, url: str) -> requests.Response:
        answer = self.http.get(url, allow_redirects=False, timeout=15)
        for _ in range(6):
            if answer.status_code not in (301, 302, 303):
                return answer
            target = urljoin(answer.url, answer.headers["Location"])
            if "/oauth2/v2.1/authorize" in target:
                target += f"&sandbox_user={self.user_id}"
            answer = self.http.get(target, allow_redirects=False, timeout=15)
        return answer
