"""Which sends wait for a second staff member, and approving or declining them.

The guard is a state before planning: a held delivery is ``pending_approval`` (nothing reserved,
nothing enqueued) until someone other than its submitter approves it; then it is released into the
ordinary pipeline (saas.delivery.services.release_held). Urgent notices are never held.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from flask_babel import gettext as _

from saas.adcheck import services as adcheck
from saas.audit.services import record
from saas.common import N_, clinic_row, parse_ids, utcnow
from saas.delivery import services as deliveries
from saas.delivery.models import Delivery, DeliveryKind, DeliveryStatus
from saas.extensions import db
from saas.fields.models import FriendField
from saas.friends.models import Tag
from saas.sendguard.models import (
    DEFAULT_APPROVAL_THRESHOLD,
    DEFAULT_FRESH_SEGMENT_MINUTES,
    ApprovalState,
    GuardSettings,
    Reason,
    SendApproval,
)
from saas.sources.models import InflowSource

REASON_LABELS = {
    Reason.AUDIENCE: N_("送信先が%(n)s人を超えています"),
    Reason.FRESH_SEGMENT: N_("数分以内に作成・変更されたタグや項目で絞り込んでいます"),
    Reason.BLOCK_FINDING: N_("医療広告ガイドラインの「要承認」の表現があります（管理者の承認が必要）"),
}


class NotAllowed(Exception):
    """This staff member may not decide this approval; the message says why."""


def settings_for(clinic_id: int) -> GuardSettings:
    """The clinic's settings row, created with the defaults on first use (for the settings page)."""
    return clinic_row(GuardSettings, clinic_id)


def _current_settings(clinic_id: int) -> GuardSettings:
    """The clinic's settings, or the defaults without writing a row (the live count asks on every change)."""
    found = db.session.scalars(sa.select(GuardSettings).where(GuardSettings.clinic_id == clinic_id)).first()
    return found or GuardSettings(approval_threshold=DEFAULT_APPROVAL_THRESHOLD,
                                  fresh_segment_minutes=DEFAULT_FRESH_SEGMENT_MINUTES)  # fmt: skip


def _recently_changed(model, ids: list, since) -> bool:
    wanted = [i for i in parse_ids(ids) if i]
    if not wanted:
        return False
    query = sa.select(sa.func.count(model.id)).where(
        model.id.in_(wanted), sa.or_(model.created_at >= since, model.updated_at >= since)
    )
    return bool(db.session.scalar(query))


def fresh_segment(segment: dict | None, minutes: int) -> bool:
    """Whether a tag, friend field or inflow source the segment uses was created or edited minutes ago."""
    segment = segment or {}
    since = utcnow() - timedelta(minutes=minutes)
    tags = list(segment.get("tag_ids") or []) + list(segment.get("exclude_tag_ids") or [])
    fields = [condition.get("field_id") for condition in segment.get("fields") or []]
    return (
        _recently_changed(Tag, tags, since)
        or _recently_changed(FriendField, fields, since)
        or _recently_changed(InflowSource, segment.get("inflow_source_ids"), since)
    )


def threshold_of(clinic_id: int) -> int:
    return _current_settings(clinic_id).approval_threshold


@dataclass(frozen=True)
class Verdict:
    reasons: tuple[str, ...]
    audience_count: int
    threshold: int

    @property
    def held(self) -> bool:
        return bool(self.reasons)

    @property
    def needs_admin(self) -> bool:
        return Reason.BLOCK_FINDING in self.reasons

    def labels(self) -> list[str]:
        return [_(REASON_LABELS[reason], n=f"{self.threshold:,}") for reason in self.reasons]


def assess(clinic_id: int, kind: str, segment: dict | None, audience_count: int, findings=()) -> Verdict:
    """Why this send needs a second pair of eyes (no reasons: it goes straight out). Urgent notices never wait."""
    settings = _current_settings(clinic_id)
    if kind == DeliveryKind.URGENT:
        return Verdict((), audience_count, settings.approval_threshold)
    reasons = []
    if audience_count > settings.approval_threshold:
        reasons.append(Reason.AUDIENCE)
    if kind == DeliveryKind.SEGMENT and fresh_segment(segment, settings.fresh_segment_minutes):
        reasons.append(Reason.FRESH_SEGMENT)
    if adcheck.has_block(list(findings)):
        reasons.append(Reason.BLOCK_FINDING)
    return Verdict(tuple(reasons), audience_count, settings.approval_threshold)


URGENT_CONFIRM_FIELD = "urgent_confirm"  # carries the count the sender confirmed


def urgent_unconfirmed(kind: str, audience_count: int, form) -> list[str]:
    """Urgent notices skip the approval, so the sender confirms the count they go to (and it must still be it)."""
    if kind != DeliveryKind.URGENT or form.get(URGENT_CONFIRM_FIELD) == str(audience_count):
        return []
    return [_("緊急のお知らせは承認なしで今すぐ %(n)s 人に送られます。人数を確認してチェックを入れてください。",
              n=f"{audience_count:,}")]  # fmt: skip


def hold(delivery: Delivery, verdict: Verdict, findings, actor) -> SendApproval:
    """Keep the delivery before planning until approved. Audited; commits."""
    delivery.status = DeliveryStatus.PENDING_APPROVAL
    approval = SendApproval(
        delivery_id=delivery.id, reasons=list(verdict.reasons), audience_count=verdict.audience_count,
        findings=adcheck.summary(list(findings)), needs_admin=verdict.needs_admin,
        requested_by_id=getattr(actor, "id", None), requested_by_email=getattr(actor, "email", "") or "",
    )  # fmt: skip
    db.session.add(approval)
    db.session.flush()
    record("delivery.approval.request", target_type="delivery", target_id=delivery.id,
           details={"reasons": list(verdict.reasons), "recipients": verdict.audience_count})  # fmt: skip
    db.session.commit()
    return approval


def check_decider(approval: SendApproval, actor, *, is_admin: bool) -> None:
    """Raise :class:`NotAllowed` unless ``actor`` may approve or decline (not the submitter; an admin for blocks)."""
    if approval.state != ApprovalState.PENDING:
        raise NotAllowed(_("この配信はすでに承認・却下されています。"))
    if approval.requested_by_id is not None and approval.requested_by_id == getattr(actor, "id", None):
        raise NotAllowed(_("自分が作成した配信は承認できません。別のスタッフに承認を依頼してください。"))
    if approval.needs_admin and not is_admin:
        raise NotAllowed(_("医療広告ガイドラインの「要承認」の表現があるため、管理者だけが承認できます。"))


def _decide(approval: SendApproval, actor, state: str, note: str) -> bool:
    """PENDING → state, once even if two approvers press at the same moment. Commits."""
    claimed = db.session.execute(
        sa.update(SendApproval)
        .where(SendApproval.id == approval.id, SendApproval.state == ApprovalState.PENDING)
        .values(state=state, decided_by_id=getattr(actor, "id", None), decided_by_email=getattr(actor, "email", ""),
                decided_at=utcnow(), note=note[:1000], updated_at=utcnow()),
        execution_options={"synchronize_session": False},
    )  # fmt: skip
    db.session.commit()
    db.session.refresh(approval)
    return claimed.rowcount == 1


def approve(approval: SendApproval, actor, *, is_admin: bool) -> Delivery:
    """Approve and release the delivery into the send pipeline. Audited."""
    check_decider(approval, actor, is_admin=is_admin)
    if not _decide(approval, actor, ApprovalState.APPROVED, ""):
        raise NotAllowed(_("この配信はすでに承認・却下されています。"))
    delivery = db.session.get(Delivery, approval.delivery_id)
    record("delivery.approve", target_type="delivery", target_id=delivery.id, actor=actor,
           details={"reasons": approval.reasons, "recipients": approval.audience_count,
                    "findings": approval.findings, "requested_by": approval.requested_by_email})  # fmt: skip
    deliveries.release_held(delivery)
    return delivery


def decline(approval: SendApproval, actor, note: str, *, is_admin: bool) -> Delivery:
    """Decline: the delivery is cancelled and nothing is sent. Audited."""
    check_decider(approval, actor, is_admin=is_admin)
    return _close(approval, actor, ApprovalState.DECLINED, note, "delivery.decline")


def withdraw(approval: SendApproval, actor) -> Delivery:
    """The submitter takes the request back; the delivery is cancelled. Audited."""
    if approval.requested_by_id != getattr(actor, "id", None) or approval.state != ApprovalState.PENDING:
        raise NotAllowed(_("取り下げできるのは、承認待ちの自分の配信だけです。"))
    return _close(approval, actor, ApprovalState.WITHDRAWN, "", "delivery.approval.withdraw")


def _close(approval: SendApproval, actor, state: str, note: str, action: str) -> Delivery:
    if not _decide(approval, actor, state, note):
        raise NotAllowed(_("この配信はすでに承認・却下されています。"))
    delivery = db.session.get(Delivery, approval.delivery_id)
    delivery.status = DeliveryStatus.CANCELLED
    delivery.stop_reason = (
        _("承認されなかったため送信していません") if state == ApprovalState.DECLINED else _("取り下げられました")
    )
    record(action, target_type="delivery", target_id=delivery.id, actor=actor, details={"note": note[:200]})
    db.session.commit()
    return delivery
