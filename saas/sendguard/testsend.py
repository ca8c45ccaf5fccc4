"""「テスト送信」: the exact messages of a send, pushed to the staff member's own LINE.

A staff member links their LINE user id at a clinic once, through the clinic's LINE Login channel
(in development the sandbox's LINE Login, where one signs in as a sandbox patient). The push goes
through saas.line like every other, counts against the month's quota and is audited.
"""

from __future__ import annotations

import hashlib
import json
import uuid

import sqlalchemy as sa
from flask_babel import gettext as _

from saas import line
from saas.audit.services import record
from saas.extensions import db
from saas.line.errors import LineError, LineRetryKeyAccepted
from saas.messaging.variables import render, sample_context
from saas.quota import counter
from saas.sendguard.models import StaffLineLink


class TestSendRefused(Exception):
    """Nothing was sent; the message says why (shown to staff)."""


def link_of(user_id: int) -> StaffLineLink | None:
    """The staff member's linked LINE at the current clinic."""
    return db.session.scalars(sa.select(StaffLineLink).where(StaffLineLink.user_id == user_id)).first()


def link(clinic, user, line_user_id: str, display_name: str) -> StaffLineLink:
    """Link (or re-link) the staff member's LINE at this clinic. Audited; commits."""
    found = link_of(user.id) or StaffLineLink(clinic_id=clinic.id, user_id=user.id)
    found.staff_line_user_id, found.display_name = line_user_id, (display_name or "")[:200]
    db.session.add(found)
    db.session.flush()
    record("staff.line.link", target_type="user", target_id=user.id, details={"display_name": found.display_name})
    db.session.commit()
    return found


def unlink(user) -> bool:
    """Forget the staff member's LINE at this clinic. Audited; commits."""
    found = link_of(user.id)
    if found is None:
        return False
    db.session.delete(found)
    record("staff.line.unlink", target_type="user", target_id=user.id)
    db.session.commit()
    return True


def rendered(clinic, messages: list[dict]) -> list[dict]:
    """The messages as the preview and the approver's page show them (the sample patient's variables)."""
    return render(messages, sample_context(clinic))


def send(clinic, user, messages: list[dict], *, delivery_id: int | None = None) -> str:
    """Push the messages to the staff member's linked LINE; the display name it went to. Audited; commits."""
    linked = link_of(user.id)
    if linked is None:
        raise TestSendRefused(_("テスト送信の前に、自分のLINEを連携してください。"))
    if not messages:
        raise TestSendRefused(_("メッセージを入力してください"))
    exact = rendered(clinic, messages)
    try:
        reservation = counter.reserve(clinic.id, 1, purpose=f"test-send:user:{user.id}")
    except counter.QuotaExceeded as exc:
        raise TestSendRefused(
            _("今月の送信可能数が残っていないため、テスト送信できません（%(reason)s）。", reason=exc)
        ) from exc
    try:
        _push(clinic, linked.staff_line_user_id, exact)
    except LineError as exc:
        counter.release(reservation, reservation.granted)
        raise TestSendRefused(_("テスト送信できませんでした（LINE: %(message)s）。", message=exc.message)) from exc
    digest = hashlib.sha256(json.dumps(exact, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    record("delivery.test_send", target_type="delivery" if delivery_id else "user",
           target_id=delivery_id or user.id,
           details={"messages": len(exact), "types": [m.get("type", "") for m in exact], "sha256": digest,
                    "to": linked.display_name})  # fmt: skip
    db.session.commit()
    return linked.display_name


def _push(clinic, user_id: str, messages: list[dict]) -> None:
    try:
        line.client.push(clinic, user_id, messages, str(uuid.uuid4()))
    except LineRetryKeyAccepted:
        return  # an earlier attempt with this key got through
