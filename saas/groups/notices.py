"""Group-wide notices: compose once, check every branch's quota before anything is sent, then one
delivery per branch through saas.delivery, in that branch's tenant scope (its own channel, quota
and rate limit). Variables such as {{clinic.name}} render per branch when each delivery is planned.

A branch whose quota cannot cover its audience is reported first; the sender chose what happens:
refuse (nothing is sent anywhere), trim (that branch sends as many as its quota allows) or skip
(that branch sends nothing). With branch approval on, each branch admin approves or declines
before a deadline; an approved branch is checked and started then.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa

from saas.common import utcnow
from saas.delivery import audience
from saas.delivery import services as deliveries
from saas.delivery.models import Delivery, DeliveryKind, DeliveryStatus
from saas.extensions import db
from saas.groups.models import BranchState, GroupNotice, GroupNoticeBranch, GroupNoticeSettings, Shortfall
from saas.messaging.variables import render, sample_context
from saas.quota.usage import usage
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import tenant_scope


@dataclass
class BranchPlan:
    """One branch's audience and quota, checked before anything is sent."""

    clinic: Clinic
    kind: str
    segment: dict
    eligible: int
    remaining: int | None
    preview: list[dict]

    @property
    def short(self) -> bool:
        return self.remaining is not None and self.eligible > self.remaining

    @property
    def shortage(self) -> int:
        return max(self.eligible - (self.remaining or 0), 0) if self.short else 0


def settings_for(organization_id: int) -> GroupNoticeSettings:
    """The organization's notice settings (defaults until saved)."""
    found = db.session.scalars(sa.select(GroupNoticeSettings).filter_by(organization_id=organization_id)).first()
    return found or GroupNoticeSettings(organization_id=organization_id, approval_required=False, approval_hours=24)


def plan_branch(clinic: Clinic, kind: str, segment: dict, messages: list[dict]) -> BranchPlan:
    """Count the branch's audience and its quota left, in its own tenant scope."""
    with tenant_scope(clinic.id):
        counts = audience.count_audience(kind, segment)
        left = usage(clinic.id).remaining
        preview = render(messages, sample_context(clinic))
    return BranchPlan(clinic, kind, segment, counts.eligible, left, preview)


def _branch(notice: GroupNotice, plan: BranchPlan, state: str) -> GroupNoticeBranch:
    branch = GroupNoticeBranch(
        clinic_id=plan.clinic.id, notice_id=notice.id, kind=plan.kind, segment=plan.segment, state=state,
        eligible=plan.eligible, remaining=plan.remaining,
    )  # fmt: skip
    db.session.add(branch)
    db.session.flush()
    return branch


def create_notice(organization, plans: list[BranchPlan], *, messages, title, urgent, shortfall, actor) -> GroupNotice:
    """Record the notice and start (or hold for approval) every branch's part. Commits."""
    settings = settings_for(organization.id)
    notice = GroupNotice(
        organization_id=organization.id, title=title or _title(messages), messages=messages, urgent=urgent,
        shortfall=shortfall, created_by_id=getattr(actor, "id", None), created_by_email=getattr(actor, "email", ""),
    )  # fmt: skip
    short = [plan for plan in plans if plan.short]
    if short and shortfall == Shortfall.REFUSE:
        notice.refused_reason = "通数が足りない院: " + "、".join(plan.clinic.name for plan in short)
    elif settings.approval_required:
        notice.approval_deadline = utcnow() + timedelta(hours=settings.approval_hours)
    db.session.add(notice)
    db.session.flush()
    for plan in plans:
        with tenant_scope(plan.clinic.id):
            _start_or_hold(notice, plan, actor)
    db.session.commit()
    return notice


def _start_or_hold(notice: GroupNotice, plan: BranchPlan, actor) -> None:
    if notice.refused_reason:
        _branch(notice, plan, BranchState.REFUSED)
    elif notice.approval_deadline is not None:
        _branch(notice, plan, BranchState.AWAITING_APPROVAL)
    elif plan.short and notice.shortfall == Shortfall.SKIP:
        _branch(notice, plan, BranchState.SKIPPED)
    else:
        start_branch(notice, _branch(notice, plan, BranchState.STARTED), allow_trim=plan.short, actor=actor)


def start_branch(notice: GroupNotice, branch: GroupNoticeBranch, *, allow_trim: bool, actor) -> None:
    """The branch's delivery, submitted in its tenant scope (the caller has entered it). Commits."""
    delivery = deliveries.create_delivery(
        messages=notice.messages, kind=branch.kind, title=notice.title, segment=branch.segment,
        allow_trim=allow_trim, actor=actor,
    )  # fmt: skip
    branch.delivery_id, branch.state = delivery.id, BranchState.STARTED
    try:
        deliveries.submit(delivery)
    except deliveries.QueueUnavailable:
        branch = db.session.get(GroupNoticeBranch, branch.id)
        branch.state, branch.delivery_id = BranchState.FAILED_TO_START, None
        db.session.commit()


def _title(messages: list[dict]) -> str:
    text = next((m.get("text") for m in messages if m.get("text")), "") or "グループ配信"
    return text.replace("\n", " ")[:60]


def decide(branch: GroupNoticeBranch, approve: bool, actor) -> str:
    """A branch admin's answer (in the branch's scope). Returns the branch's new state. Commits."""
    notice = db.session.get(GroupNotice, branch.notice_id)
    if branch.state != BranchState.AWAITING_APPROVAL:
        return branch.state
    branch.decided_by_email, branch.decided_at = getattr(actor, "email", ""), utcnow()
    if notice.approval_deadline and utcnow() > notice.approval_deadline:
        branch.state = BranchState.EXPIRED
    elif not approve:
        branch.state = BranchState.DECLINED
    else:
        _start_approved(notice, branch, actor)
    db.session.commit()
    return branch.state


def _start_approved(notice: GroupNotice, branch: GroupNoticeBranch, actor) -> None:
    """The quota is checked again now: the notice's shortfall choice applies to this branch alone."""
    clinic = db.session.get(Clinic, branch.clinic_id)
    plan = plan_branch(clinic, branch.kind, branch.segment, notice.messages)
    branch.eligible, branch.remaining = plan.eligible, plan.remaining
    if plan.short and notice.shortfall == Shortfall.REFUSE:
        branch.state = BranchState.REFUSED
    elif plan.short and notice.shortfall == Shortfall.SKIP:
        branch.state = BranchState.SKIPPED
    else:
        start_branch(notice, branch, allow_trim=plan.short, actor=actor)


def expire_overdue(notice: GroupNotice) -> None:
    """Branches that did not answer before the deadline are not sent. Commits when any changed."""
    if notice.approval_deadline is None or utcnow() <= notice.approval_deadline:
        return
    for branch in notice.branches:
        with tenant_scope(branch.clinic_id):
            row = db.session.get(GroupNoticeBranch, branch.id)
            if row.state == BranchState.AWAITING_APPROVAL:
                row.state = BranchState.EXPIRED
                db.session.commit()


@dataclass
class BranchProgress:
    branch: GroupNoticeBranch
    clinic: Clinic
    delivery: Delivery | None


def progress(notice: GroupNotice) -> list[BranchProgress]:
    """Each branch's state and its delivery's live counts (display only: nothing is written)."""
    rows = []
    for branch in db.session.scalars(
        sa.select(GroupNoticeBranch).where(GroupNoticeBranch.notice_id == notice.id).order_by(GroupNoticeBranch.id)
    ):
        clinic = db.session.get(Clinic, branch.clinic_id)
        delivery = None
        if branch.delivery_id:
            with tenant_scope(branch.clinic_id):
                delivery = db.session.get(Delivery, branch.delivery_id)
                if delivery is not None and delivery.status == DeliveryStatus.SENDING:
                    # Detached first: the live counts must never be flushed, least of all from the
                    # next branch's tenant scope (a TenantScopeError, i.e. a 500 while sending).
                    db.session.expunge(delivery)
                    deliveries.refresh_counts(delivery)
        rows.append(BranchProgress(branch, clinic, delivery))
    return rows


def kind_for(urgent: bool, audience_choice: str) -> str:
    """Urgent notices go to every following friend on the urgent path in every branch."""
    if urgent:
        return DeliveryKind.URGENT
    return DeliveryKind.SEGMENT if audience_choice == "segment" else DeliveryKind.BROADCAST
