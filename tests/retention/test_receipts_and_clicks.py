"""Retention of what each friend received (message_receipt) and tapped (link_click): purged after
the clinic's delivery-recipient period, counted from the send or the tap; recent rows, another
clinic's rows, the short link itself and the analytics roll-ups stay."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from saas.analytics.models import ClinicDay
from saas.common import utcnow
from saas.extensions import db
from saas.links import services as links
from saas.links.models import LinkClick, TrackedLink
from saas.receipts.models import FriendReceipt
from saas.retention.jobs import purge_expired_data
from saas.retention.services import policy_for
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_clinic

NOW = utcnow()


def _history(days_kept: int | None = None):
    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        if days_kept:
            policy_for(clinic.id).delivery_recipient_days = days_kept
        link = TrackedLink(code=links.new_code(), url="https://example.jp/flu", delivery_id=7, friend_id=1)
        db.session.add(link)
        db.session.flush()
        for age in (100, 10):
            db.session.add(
                FriendReceipt(friend_id=1, source="broadcast", delivery_id=age, sent_at=NOW - timedelta(days=age))
            )
            db.session.add(LinkClick(link_id=link.id, friend_id=1, delivery_id=7, clicked_at=NOW - timedelta(days=age)))
        db.session.add(ClinicDay(day=(NOW - timedelta(days=100)).date(), clicks=1))
        db.session.commit()
        return clinic, link.code


def _ages(clinic) -> tuple[list[int], list[int]]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        receipts = db.session.scalars(sa.select(FriendReceipt.sent_at).order_by(FriendReceipt.sent_at)).all()
        clicks = db.session.scalars(sa.select(LinkClick.clicked_at).order_by(LinkClick.clicked_at)).all()
    return [(NOW - at).days for at in receipts], [(NOW - at).days for at in clicks]


def test_receipts_and_clicks_older_than_the_clinics_period_are_purged_and_the_rest_kept(app, client):
    clinic, code = _history(days_kept=90)
    default = _history()  # 180 days by default
    done = purge_expired_data()
    assert (done["message_receipts"], done["link_clicks"]) == (1, 1)
    assert _ages(clinic) == ([10], [10])
    assert _ages(default[0]) == ([100, 10], [100, 10])
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(ClinicDay.clicks)) == 1  # the day's count stays
    assert client.get(f"/l/{code}", headers={"User-Agent": "Mozilla/5.0 Line/14.1.0"}).status_code == 302
    again = purge_expired_data()
    assert (again["message_receipts"], again["link_clicks"]) == (0, 0)


def test_the_settings_page_says_receipts_and_clicks_follow_the_recipient_period(client):
    from tests.factories import gen_user
    from tests.helpers import login

    clinic = gen_clinic()
    login(client, gen_user("owner", clinic=clinic))
    assert "リンクのクリック記録" in client.get(f"/c/{clinic.slug}/retention").get_data(as_text=True)
