"""Billing accounts (one per paying agency or organization), their invoices, and Stripe events seen.

None of these rows belongs to a clinic, so they are not ``TenantOwned``: every read goes through
``saas.billing.accounts``, which checks the reader's membership at the paying level.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from flask_babel import lazy_gettext as _l
from sqlalchemy.orm import Mapped, mapped_column

from saas.common import Timestamped, utcnow
from saas.extensions import db

# Stripe subscription statuses in which the service is paid for (or about to be).
LIVE_STATUSES = frozenset({"active", "trialing", "past_due"})
# Statuses that mean a charge failed and is being retried: dunning runs.
FAILING_STATUSES = frozenset({"past_due", "unpaid"})
# Statuses after which marketing sends stop at once (no grace: the subscription ended).
ENDED_STATUSES = frozenset({"canceled", "unpaid", "incomplete_expired"})


# Stripe's subscription statuses as the billing page and the audit log say them.
STATUS_LABELS = {
    "none": _l("未契約"),
    "incomplete": _l("手続き中"),
    "active": _l("ご契約中"),
    "trialing": _l("お試し中"),
    "past_due": _l("お支払い未確認"),
    "unpaid": _l("未払い（停止中）"),
    "canceled": _l("解約済み"),
    "incomplete_expired": _l("手続き期限切れ"),
    "paused": _l("一時停止中"),
}


def status_label(status: str) -> str:
    return str(STATUS_LABELS.get(status, status))


def status_in_japanese(status: str) -> str:
    """The status as the audit log keeps it: in Japanese, whatever the language of the request."""
    from flask_babel import force_locale

    with force_locale("ja"):
        return status_label(status)


class DunningStep:
    """How far the reminders after a failed payment have gone (each step is sent once)."""

    NONE = 0
    WARNED = 1  # the failure was announced
    REMINDED = 2  # "marketing pauses tomorrow"
    PAUSED = 3  # marketing sends paused


class BillingAccount(Timestamped, db.Model):
    """Who pays: exactly one of an agency or an organization, and its Stripe customer and subscription."""

    __tablename__ = "billing_account"
    __table_args__ = (sa.CheckConstraint("(agency_id IS NULL) <> (organization_id IS NULL)", name="one_payer"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agency_id: Mapped[int | None] = mapped_column(sa.ForeignKey("agency.id", ondelete="CASCADE"), unique=True)
    organization_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("organization.id", ondelete="CASCADE"), unique=True
    )
    plan_key: Mapped[str] = mapped_column(sa.String(64))
    billing_email: Mapped[str] = mapped_column(sa.String(254), default="")
    stripe_customer_id: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(sa.String(64), unique=True)
    status: Mapped[str] = mapped_column(sa.String(32), default="none")  # Stripe's, or "none" before checkout
    quantity: Mapped[int] = mapped_column(default=0)  # clinics on the subscription (as Stripe last said)
    unit_amount: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(sa.String(8), default="jpy")
    current_period_end: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(default=False)
    payment_failed_at: Mapped[datetime | None]  # first failed charge of the current dunning
    dunning_step: Mapped[int] = mapped_column(default=DunningStep.NONE)
    marketing_paused_at: Mapped[datetime | None]

    @property
    def has_subscription(self) -> bool:
        return self.stripe_subscription_id is not None

    @property
    def is_live(self) -> bool:
        return self.has_subscription and self.status in LIVE_STATUSES

    @property
    def marketing_paused(self) -> bool:
        return self.marketing_paused_at is not None or (self.has_subscription and self.status in ENDED_STATUSES)


class BillingInvoice(db.Model):
    """A Stripe invoice of an account, as last read from Stripe (history with hosted links and PDFs)."""

    __tablename__ = "billing_invoice"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(sa.ForeignKey("billing_account.id", ondelete="CASCADE"), index=True)
    stripe_invoice_id: Mapped[str] = mapped_column(sa.String(64), unique=True)
    number: Mapped[str] = mapped_column(sa.String(64), default="")
    status: Mapped[str] = mapped_column(sa.String(32))
    total: Mapped[int] = mapped_column(default=0)
    amount_paid: Mapped[int] = mapped_column(default=0)
    currency: Mapped[str] = mapped_column(sa.String(8), default="jpy")
    hosted_invoice_url: Mapped[str] = mapped_column(sa.String(500), default="")
    invoice_pdf: Mapped[str] = mapped_column(sa.String(500), default="")
    period_start: Mapped[datetime | None]
    period_end: Mapped[datetime | None]
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]


class StripeEvent(db.Model):
    """A Stripe event handled: the primary key makes a replayed event id change nothing."""

    __tablename__ = "stripe_event"

    id: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    type: Mapped[str] = mapped_column(sa.String(100))
    account_id: Mapped[int | None] = mapped_column(index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
