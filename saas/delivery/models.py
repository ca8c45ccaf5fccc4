"""A delivery (one send), its recipients snapshot and its chunks of at most 500 recipients."""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import BigId, Timestamped
from saas.extensions import db
from saas.tenancy.scoping import TenantOwned


class DeliveryKind(enum.StrEnum):
    BROADCAST = "broadcast"  # every following friend (with marketing consent)
    SEGMENT = "segment"
    URGENT = "urgent"  # 休診・代診・災害: every following friend, `urgent` queue
    PUSH = "push"  # one friend
    STEP = "step"  # ステップ配信: the friends due for one scenario step (``segment["friend_ids"]``)


class DeliveryStatus(enum.StrEnum):
    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"  # held by the mis-send guard (saas/sendguard) before planning
    SCHEDULED = "scheduled"
    PLANNING = "planning"
    SENDING = "sending"
    DONE = "done"  # every recipient sent (or skipped for a reason shown)
    PARTLY_FAILED = "partly_failed"  # 一部失敗: some recipients could not be sent
    FAILED = "failed"  # 失敗: nobody could be sent
    CANCELLED = "cancelled"
    STOPPED = "stopped"  # LINE's monthly limit reached mid-send
    REFUSED = "refused"  # not enough quota left; nothing sent


ACTIVE_STATUSES = (DeliveryStatus.SCHEDULED, DeliveryStatus.PLANNING, DeliveryStatus.SENDING)
FINAL_STATUSES = (
    DeliveryStatus.DONE,
    DeliveryStatus.PARTLY_FAILED,
    DeliveryStatus.FAILED,
    DeliveryStatus.CANCELLED,
    DeliveryStatus.STOPPED,
    DeliveryStatus.REFUSED,
)
RESENDABLE_STATUSES = (DeliveryStatus.PARTLY_FAILED, DeliveryStatus.FAILED)


class ChunkStatus(enum.StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class Delivery(TenantOwned, Timestamped, db.Model):
    """One send: what, to whom (audience definition), when, and how it went."""

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(16), default=DeliveryKind.BROADCAST)
    source: Mapped[str | None] = mapped_column(sa.String(16))  # what sent it besides the composer: "coupon"
    title: Mapped[str] = mapped_column(sa.String(200), default="")
    messages: Mapped[list] = mapped_column(sa.JSON, default=list)  # template, variables kept
    # The {{clinic.*}} values the send rendered, kept when planning starts: the pages show the
    # message and title as sent even after the clinic renames itself (None: not planned yet).
    sent_clinic: Mapped[dict | None] = mapped_column(sa.JSON)
    segment: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    friend_id: Mapped[int | None] = mapped_column()  # single push
    allow_trim: Mapped[bool] = mapped_column(default=False)
    # 友だちごとにクリックを計測: URLs get codes per recipient (sent as pushes), else per link (saas.links)
    track_clicks_per_friend: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    status: Mapped[str] = mapped_column(sa.String(16), default=DeliveryStatus.DRAFT, index=True)
    scheduled_at: Mapped[datetime | None] = mapped_column(index=True)  # naive UTC
    urgent_notice_id: Mapped[int | None] = mapped_column()
    created_by_id: Mapped[int | None] = mapped_column()
    created_by_email: Mapped[str] = mapped_column(sa.String(255), default="")
    reservation: Mapped[dict | None] = mapped_column(sa.JSON)
    resend_of_id: Mapped[int | None] = mapped_column(  # 「失敗分を再送」: at most one resend per delivery
        sa.ForeignKey("delivery.id", ondelete="SET NULL"), unique=True
    )
    targeted: Mapped[int] = mapped_column(default=0)
    planned: Mapped[int] = mapped_column(default=0)  # recipients planned so far (progress while 準備中)
    sent: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[dict] = mapped_column(sa.JSON, default=dict)  # reason -> count
    stop_reason: Mapped[str] = mapped_column(sa.Text, default="")
    started_at: Mapped[datetime | None] = mapped_column()
    finished_at: Mapped[datetime | None] = mapped_column()

    @property
    def queue_name(self) -> str:
        """Where its chunks are sent from."""
        return "urgent" if self.kind == DeliveryKind.URGENT else "bulk"

    @property
    def planning_queue_name(self) -> str:
        """Where it is planned: urgent notices are planned and sent in one job on ``urgent``."""
        return "urgent" if self.kind == DeliveryKind.URGENT else "default"

    @property
    def is_resendable(self) -> bool:
        return self.status in RESENDABLE_STATUSES and self.failed > 0

    @property
    def planning_percent(self) -> int:
        return 0 if not self.targeted else min(100, round(100 * self.planned / self.targeted))

    @property
    def skipped_total(self) -> int:
        return sum((self.skipped or {}).values())

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    @property
    def processed(self) -> int:
        return (
            self.sent
            + self.failed
            + sum(v for k, v in (self.skipped or {}).items() if k not in ("blocked", "no_consent", "over_quota"))
        )

    @property
    def percent(self) -> int:
        """How far the send has got: nobody targeted is 100% only once it is over (a held, scheduled or
        planning send has not started)."""
        if not self.targeted:
            return 100 if self.status in FINAL_STATUSES else 0
        return min(100, round(100 * self.processed / self.targeted))


class DeliveryChunk(TenantOwned, Timestamped, db.Model):
    """At most 500 recipients sent by one RQ job, with its retry key fixed before the first call.

    A multicast chunk holds its recipients itself (``friend_ids``, resolved to LINE user ids when
    it is sent) and its outcome is one row's state: a send to 100,000 friends writes 200 rows, not
    100,000. Push chunks (one rendering per friend) keep a :class:`DeliveryRecipient` row each.
    """

    __table_args__ = (sa.UniqueConstraint("delivery_id", "seq"),)  # also serves lookups by delivery

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(sa.ForeignKey("delivery.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column()
    mode: Mapped[str] = mapped_column(sa.String(16))  # multicast | push
    messages: Mapped[list] = mapped_column(sa.JSON, default=list)  # rendered (multicast)
    size: Mapped[int] = mapped_column(default=0)
    friend_ids: Mapped[list] = mapped_column(sa.JSON, default=list)  # multicast: the recipients, in order
    last_friend_id: Mapped[int | None] = mapped_column()  # its highest friend id: where a resumed plan starts
    retry_key: Mapped[str] = mapped_column(sa.String(36))
    status: Mapped[str] = mapped_column(sa.String(16), default=ChunkStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    sent: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    skip_reason: Mapped[str] = mapped_column(sa.String(32), default="")
    last_error: Mapped[str] = mapped_column(sa.Text, default="")
    request_id: Mapped[str | None] = mapped_column(sa.String(64))
    first_attempt_at: Mapped[datetime | None] = mapped_column()  # LINE keeps a retry key about 24 h from here
    unanswered: Mapped[bool] = mapped_column(default=False)  # an attempt got no answer: LINE may have accepted it
    sent_at: Mapped[datetime | None] = mapped_column()

    @property
    def job_id(self) -> str:
        """The RQ job id of the chunk's current attempt, so the sweeper can tell a lost job from a live one."""
        return f"delivery-chunk-{self.id}-{self.attempts}"


class DeliveryRecipient(TenantOwned, db.Model):
    """One friend of a push chunk (own rendering, own retry key, own outcome): at most once per delivery."""

    __table_args__ = (sa.UniqueConstraint("delivery_id", "friend_id"),)  # also serves lookups by delivery

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    delivery_id: Mapped[int] = mapped_column(sa.ForeignKey("delivery.id", ondelete="CASCADE"))
    chunk_id: Mapped[int | None] = mapped_column(sa.ForeignKey("delivery_chunk.id", ondelete="CASCADE"), index=True)
    friend_id: Mapped[int] = mapped_column()
    line_user_id: Mapped[str] = mapped_column(sa.String(64))
    messages: Mapped[list | None] = mapped_column(sa.JSON)  # rendered, for personalised pushes
    retry_key: Mapped[str | None] = mapped_column(sa.String(36))  # push chunks: one key per friend
    status: Mapped[str] = mapped_column(sa.String(16), default=ChunkStatus.PENDING)
    error: Mapped[str] = mapped_column(sa.Text, default="")
