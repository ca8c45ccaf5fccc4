"""``message_receipt``: one row per friend per send that LINE accepted — "what did friend X receive, when".

A multicast chunk keeps its recipients as a JSON list (issue 18: no per-recipient bookkeeping
rows), so nothing else answers by index which friend got which message. A receipt does, and
only that: who, when, which kind of send, and a *reference* to what was sent rather than a copy
of it where a copy is already kept:

| source                                  | points at                            | content of the send        |
|-----------------------------------------|--------------------------------------|----------------------------|
| broadcast, segment, urgent, step, push, | ``delivery_id`` and ``chunk_id``     | the chunk's ``messages``   |
| coupon (deliveries; ``Delivery.source``)|                                      | (multicast) or the friend's|
|                                         |                                      | ``DeliveryRecipient``      |
| auto_reply, greeting, staff             | ``message_id`` (the conversation)    | the ``message`` rows       |
| reminder, booking_notice                | ``ref_id`` (the booking / reminder)  | ``preview`` + ``messages`` |

Rows are written by :mod:`saas.receipts.services` in the same transaction that marks the send
as done (chunk SENT, push recipient SENT, booking reminder SENT…), so a retried send writes them
at most once; the unique ``(clinic_id, delivery_id, friend_id)`` backs that up for deliveries.
Indexes, all led by ``clinic_id``: ``(clinic_id, friend_id, sent_at, id)`` for a friend's
timeline (keyset-paged), the unique one above for per-delivery reports and ``(clinic_id, sent_at)``
for the retention purge (saas.retention: kept as long as the clinic keeps delivery recipients).
"""

from __future__ import annotations

import enum
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import BigId, utcnow
from saas.extensions import db
from saas.privacy.coverage import ANONYMISE, patient_table
from saas.tenancy.scoping import TenantOwned

PREVIEW_LENGTH = 120


class ReceiptSource(enum.StrEnum):
    """What kind of send a friend received."""

    BROADCAST = "broadcast"  # 一斉配信
    SEGMENT = "segment"  # セグメント配信
    URGENT = "urgent"  # 休診・代診・災害のお知らせ
    STEP = "step"  # ステップ配信
    PUSH = "push"  # 個別配信 (a one-friend delivery)
    COUPON = "coupon"  # a coupon sent or granted through the delivery pipeline
    REMINDER = "reminder"  # booking reminder or a recurring-reminder rule
    BOOKING_NOTICE = "booking_notice"  # confirmation, change, cancellation, closure of a booking
    GREETING = "greeting"  # 挨拶メッセージ (answer to a follow)
    AUTO_REPLY = "auto_reply"  # 自動応答 / FAQ / postback answers
    STAFF = "staff"  # a staff reply from the inbox


class FriendReceipt(TenantOwned, db.Model):
    """One friend's receipt of one send (see the module docstring for what each column points at)."""

    __tablename__ = "message_receipt"
    __table_args__ = (
        sa.Index("ix_message_receipt_friend_time", "clinic_id", "friend_id", "sent_at", "id"),
        sa.Index("ix_message_receipt_clinic_time", "clinic_id", "sent_at"),  # the retention purge's range
        sa.UniqueConstraint("clinic_id", "delivery_id", "friend_id", name="uq_message_receipt_delivery_friend"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    # The indexes lead with clinic_id, so the mixin's own one-column index would only slow inserts.
    clinic_id: Mapped[int] = mapped_column(sa.ForeignKey("clinic.id", ondelete="CASCADE"), nullable=False)
    friend_id: Mapped[int] = mapped_column()  # no FK: friends are anonymised, not deleted; keeps inserts lean
    source: Mapped[str] = mapped_column(sa.String(16))
    delivery_id: Mapped[int | None] = mapped_column()
    chunk_id: Mapped[int | None] = mapped_column()  # the delivery chunk that carried it
    message_id: Mapped[int | None] = mapped_column(BigId)  # the conversation's first message of the send
    ref_id: Mapped[int | None] = mapped_column()  # booking (booking_notice, reminder) or reminder rule row
    preview: Mapped[str] = mapped_column(sa.String(PREVIEW_LENGTH), default="")  # only where nothing else keeps it
    messages: Mapped[list | None] = mapped_column(sa.JSON)  # exactly what was sent, only where nothing else keeps it
    sent_at: Mapped[datetime] = mapped_column(default=utcnow)


# The preview and copied messages may hold the patient's name or booking; the row itself stays for counts.
patient_table("message_receipt", keys=("friend_id",), erase=ANONYMISE, section="receipts",
              blank={"preview": "", "messages": None})  # fmt: skip
