"""Group-wide notices of an organization (医療法人本部): one composition, one delivery per branch.

The notice belongs to the organization (not a clinic); each branch's part is a clinic-owned row,
so a branch sees only its own part and its delivery runs in its own tenant scope, channel,
quota and rate limit.
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from saas.common import Timestamped
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


class Shortfall(enum.StrEnum):
    """What to do with a branch whose quota cannot cover its audience (chosen by the sender)."""

    REFUSE = "refuse"  # send nothing anywhere
    TRIM = "trim"  # that branch sends to as many as its quota allows
    SKIP = "skip"  # that branch sends nothing; the others send


class BranchState(enum.StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"
    DECLINED = "declined"
    EXPIRED = "expired"
    SKIPPED = "skipped"  # short of quota, skipped as chosen
    REFUSED = "refused"  # the whole notice was refused (a branch was short)
    STARTED = "started"  # its delivery exists: progress and counts come from it
    FAILED_TO_START = "failed_to_start"  # the job queue was unreachable


class GroupNoticeSettings(Timestamped, db.Model):
    """Per organization: whether branch admins approve group notices, and how long they have."""

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id", ondelete="CASCADE"), unique=True)
    approval_required: Mapped[bool] = mapped_column(default=False)
    approval_hours: Mapped[int] = mapped_column(default=24)


class GroupNotice(Timestamped, db.Model):
    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    title: Mapped[str] = mapped_column(sa.String(200), default="")
    messages: Mapped[list] = mapped_column(sa.JSON, default=list)  # the template; rendered per branch
    urgent: Mapped[bool] = mapped_column(default=False)
    shortfall: Mapped[str] = mapped_column(sa.String(16), default=Shortfall.REFUSE)
    refused_reason: Mapped[str] = mapped_column(sa.Text, default="")
    approval_deadline: Mapped[datetime | None] = mapped_column()  # naive UTC; None: no approval asked
    created_by_id: Mapped[int | None] = mapped_column(sa.ForeignKey("user.id", ondelete="SET NULL"))
    created_by_email: Mapped[str] = mapped_column(sa.String(255), default="")

    branches: Mapped[list[GroupNoticeBranch]] = relationship(order_by="GroupNoticeBranch.id", viewonly=True)


class GroupNoticeBranch(TenantOwned, Timestamped, db.Model):
    """One branch's part of a group notice: its audience, its quota check, its delivery."""

    __table_args__ = (sa.UniqueConstraint("notice_id", "clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    notice_id: Mapped[int] = mapped_column(sa.ForeignKey("group_notice.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16), default="broadcast")  # broadcast | segment | urgent
    segment: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    state: Mapped[str] = mapped_column(sa.String(24), default=BranchState.STARTED)
    eligible: Mapped[int] = mapped_column(default=0)  # at the quota check
    remaining: Mapped[int | None] = mapped_column()  # quota left at the check; None: no cap of ours
    delivery_id: Mapped[int | None] = mapped_column()
    decided_by_email: Mapped[str] = mapped_column(sa.String(255), default="")
    decided_at: Mapped[datetime | None] = mapped_column()

    @property
    def short(self) -> bool:
        return self.remaining is not None and self.eligible > self.remaining


class PublishKind(enum.StrEnum):
    TEMPLATE = "template"  # a library template: the branch's copy is its own version of the item
    SCENARIO = "scenario"  # a step scenario: the branch's copy is a StepScenario (a draft when new)
    COUPON = "coupon"  # a coupon: the branch's copy is a Coupon (a draft when new)


class GroupPublication(Timestamped, db.Model):
    """What HQ published to its branches from one source (a library item or one branch's own row):
    the content as last published, and its version (1 for the first publish, +1 each re-publish)."""

    __table_args__ = (sa.UniqueConstraint("organization_id", "kind", "source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    organization_id: Mapped[int] = mapped_column(sa.ForeignKey("organization.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    source: Mapped[str] = mapped_column(sa.String(120))  # library:<set>:<item> | coupon:<clinic>:<id> | scenario:…
    title: Mapped[str] = mapped_column(sa.String(200), default="")
    content: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    version: Mapped[int] = mapped_column(default=1)
    published_by_email: Mapped[str] = mapped_column(sa.String(255), default="")


class PublishedCopy(TenantOwned, Timestamped, db.Model):
    """A branch's copy of a publication: which of its rows it is, and that row's content right after
    HQ last wrote it (``base``), so a branch's own edits since are seen and never silently overwritten."""

    __table_args__ = (sa.UniqueConstraint("publication_id", "clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    publication_id: Mapped[int] = mapped_column(sa.ForeignKey("group_publication.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(16))
    target_id: Mapped[int] = mapped_column()  # ClinicLibraryOverride / StepScenario / Coupon id in the branch
    base: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    version: Mapped[int] = mapped_column(default=1)
