"""The guard's clinic settings, the approval a held delivery waits for, and staff members' own LINE ids."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped
from saas.extensions import db
from saas.privacy.coverage import DELETE, patient_table
from saas.tenancy.scoping import TenantOwned

DEFAULT_APPROVAL_THRESHOLD = 300  # friends; a bigger send waits for a second staff member
DEFAULT_FRESH_SEGMENT_MINUTES = 10  # a segment of tags/fields/sources changed this recently waits too


class GuardSettings(TenantOwned, Timestamped, db.Model):
    """One row per clinic (created with the defaults on first use)."""

    __tablename__ = "send_guard_settings"
    __table_args__ = (sa.UniqueConstraint("clinic_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    approval_threshold: Mapped[int] = mapped_column(default=DEFAULT_APPROVAL_THRESHOLD)
    fresh_segment_minutes: Mapped[int] = mapped_column(default=DEFAULT_FRESH_SEGMENT_MINUTES)


class Reason(enum.StrEnum):
    AUDIENCE = "audience"  # more friends than the clinic's threshold
    FRESH_SEGMENT = "fresh_segment"  # its tags, fields or sources were created or edited minutes ago
    BLOCK_FINDING = "block_finding"  # a 医療広告 finding of severity block: an admin must approve


class ApprovalState(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"


class SendApproval(TenantOwned, Timestamped, db.Model):
    """A held delivery and who asked, why, and who decided. The delivery waits in ``pending_approval``."""

    __tablename__ = "send_approval"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(sa.ForeignKey("delivery.id", ondelete="CASCADE"), unique=True)
    reasons: Mapped[list] = mapped_column(sa.JSON, default=list)
    audience_count: Mapped[int] = mapped_column(default=0)
    findings: Mapped[list] = mapped_column(sa.JSON, default=list)  # adcheck summaries at submit time
    needs_admin: Mapped[bool] = mapped_column(default=False)
    state: Mapped[str] = mapped_column(sa.String(16), default=ApprovalState.PENDING, index=True)
    requested_by_id: Mapped[int | None] = mapped_column()
    requested_by_email: Mapped[str] = mapped_column(sa.String(255), default="")
    decided_by_id: Mapped[int | None] = mapped_column()
    decided_by_email: Mapped[str] = mapped_column(sa.String(255), default="")
    decided_at: Mapped[datetime | None] = mapped_column()
    note: Mapped[str] = mapped_column(sa.Text, default="")


class StaffLineLink(TenantOwned, Timestamped, db.Model):
    """A staff member's own LINE user id at this clinic's channel (LINE ids differ per provider), for テスト送信.

    The id is the staff member's own, linked by themselves through LINE Login; a staff member may
    also be a friend of the clinic with the same id, so erasing that friend removes the link too.
    """

    __tablename__ = "staff_line_link"
    __table_args__ = (sa.UniqueConstraint("clinic_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("user.id", ondelete="CASCADE"), index=True)
    staff_line_user_id: Mapped[str] = mapped_column(sa.String(64))
    display_name: Mapped[str] = mapped_column(sa.String(200), default="")


patient_table("staff_line_link", keys=("staff_line_user_id",), erase=DELETE, section="staff_line_links")
