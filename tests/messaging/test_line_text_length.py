"""Text length as LINE counts it (UTF-16 code units) where the product sends long texts."""

from __future__ import annotations

from saas.extensions import db
from saas.messaging.limits import utf16_length
from saas.queues import get_queue
from saas.schedule.models import UrgentNoticeRequest
from saas.tenancy.scoping import tenant_scope
from tests.delivery.support import add_friends, connected_clinic, drain


def test_an_urgent_notice_full_of_emoji_is_cut_at_a_code_unit_boundary_and_delivered(sandbox):
    from saas.delivery.jobs import deliver_urgent_notice

    clinic = connected_clinic(sandbox, "1711000001")
    patients = add_friends(sandbox, clinic, 3)
    with tenant_scope(clinic.id):
        notice = UrgentNoticeRequest(clinic_id=clinic.id, text="本日休診🏥" + "😷" * 3000)
        db.session.add(notice)
        db.session.commit()
        get_queue("urgent").enqueue(deliver_urgent_notice, notice.id, clinic.id)
    drain()
    [received] = sandbox.inbox("1711000001", patients[0])
    text = received["message"]["text"]
    assert utf16_length(text) <= 5000 and text.startswith("本日休診🏥😷")
    assert text.encode("utf-8")  # no half emoji: a lone surrogate cannot be encoded
