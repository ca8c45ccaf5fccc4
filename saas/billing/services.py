"""Starting a subscription (Checkout), the Customer Portal, quantity changes, and taking
Stripe's word for an account's state.

State always comes from objects re-read from Stripe (``sync_subscription``, ``sync_invoices``),
never from a webhook's payload, so events arriving late, twice or out of order converge on
what Stripe says now.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import sqlalchemy as sa

from saas.audit.services import record
from saas.billing import accounts, dunning, gateway, plans
from saas.billing.accounts import Payer
from saas.billing.models import BillingAccount, BillingInvoice, status_in_japanese
from saas.extensions import db

log = logging.getLogger(__name__)
INVOICE_HISTORY = 24  # invoices kept in view: two years of monthly invoices


def _time(stamp: int | None) -> datetime | None:
    return datetime.fromtimestamp(stamp, UTC).replace(tzinfo=None) if stamp else None


def ensure_account(payer: Payer) -> BillingAccount:
    """The payer's account row, created on first use (no Stripe call)."""
    account = accounts.account_of(payer)
    if account is None:
        column = "agency_id" if payer.level == "agency" else "organization_id"
        account = BillingAccount(plan_key=plans.get_plan().key, **{column: payer.id})
        db.session.add(account)
        db.session.flush()
    return account


def _ensure_customer(client, account: BillingAccount, payer: Payer, email: str) -> str:
    if account.stripe_customer_id is None:
        customer = client.v1.customers.create(
            params={
                "name": payer.name,
                "email": email,
                "metadata": {"tsunagu_account": str(account.id), "level": payer.level, "slug": payer.slug},
                "preferred_locales": ["ja"],
            },
            options={"idempotency_key": f"tsunagu-customer-{account.id}"},
        )
        account.stripe_customer_id, account.billing_email = customer.id, email
        db.session.commit()
    return account.stripe_customer_id


def start_checkout(payer: Payer, user, success_url: str, cancel_url: str) -> str:
    """A Checkout Session for a monthly subscription of ``quantity = clinics``; returns its URL."""
    client = gateway.client()
    account = ensure_account(payer)
    plan = plans.get_plan(account.plan_key)
    customer = _ensure_customer(client, account, payer, user.email)
    quantity = max(accounts.clinic_count(payer), 1)
    session = client.v1.checkout.sessions.create(
        params={
            "mode": "subscription",
            "customer": customer,
            "client_reference_id": str(account.id),
            "line_items": [{"price": plans.price_id(client, plan), "quantity": quantity}],
            "success_url": success_url,
            "cancel_url": cancel_url,
            "locale": "ja",
            "subscription_data": {"metadata": {"tsunagu_account": str(account.id)}},
            "metadata": {"tsunagu_account": str(account.id)},
        }
    )
    record(
        "billing.checkout_started",
        target_type="billing_account",
        target_id=account.id,
        details={"payer": payer.name, "quantity": quantity, "plan": plan.name},
    )
    db.session.commit()
    return session.url


def portal_url(account: BillingAccount, return_url: str) -> str:
    """A Customer Portal session (cards, invoices, cancellation) for the account's customer."""
    session = gateway.client().v1.billing_portal.sessions.create(
        params={"customer": account.stripe_customer_id, "return_url": return_url, "locale": "ja"}
    )
    record("billing.portal_opened", target_type="billing_account", target_id=account.id, commit=True)
    return session.url


def account_by_customer(customer_id: str | None) -> BillingAccount | None:
    if not customer_id:
        return None
    return db.session.scalars(sa.select(BillingAccount).where(BillingAccount.stripe_customer_id == customer_id)).first()


def complete_checkout(session_id: str) -> BillingAccount | None:
    """Read the Checkout Session back from Stripe; when complete, adopt its subscription."""
    session = gateway.client().v1.checkout.sessions.retrieve(session_id)
    account = account_by_customer(session.customer)
    if account is None or session.status != "complete" or not session.subscription:
        return account
    sync_subscription(account, session.subscription)
    return account


def _adopt(account: BillingAccount, subscription) -> bool:
    """Whether this subscription is the account's: its current one, or a new one replacing an ended one."""
    current = account.stripe_subscription_id
    return current in (None, subscription.id) or account.status in ("canceled", "incomplete_expired")


def _cancel_if_duplicate(account: BillingAccount, subscription) -> None:
    """A second Checkout paid while the first was open made a second subscription for the same
    payer: it is cancelled at once (the payer would otherwise pay twice), and the cancel audited."""
    if not account.is_live or subscription.status in ("canceled", "incomplete_expired"):
        return
    if subscription.customer != account.stripe_customer_id:
        return
    gateway.client().v1.subscriptions.cancel(subscription.id, params={"prorate": True, "invoice_now": True})
    record(
        "billing.duplicate_cancelled",
        target_type="billing_account",
        target_id=account.id,
        details={"subscription": subscription.id, "kept": account.stripe_subscription_id},
    )
    db.session.flush()


def sync_subscription(account: BillingAccount, subscription_id: str) -> None:
    """Take the subscription's state from Stripe (re-read now), then the invoices and dunning."""
    subscription = gateway.client().v1.subscriptions.retrieve(subscription_id)
    if not _adopt(account, subscription):
        log.info("billing: subscription %s is not account %s's current one", subscription_id, account.id)
        _cancel_if_duplicate(account, subscription)
        return
    item = subscription["items"].data[0]
    before = account.status
    account.stripe_subscription_id = subscription.id
    account.status = subscription.status
    account.quantity = item.quantity or 0
    account.unit_amount = item.price.unit_amount or 0
    account.currency = item.price.currency
    account.current_period_end = _time(item.current_period_end)
    account.cancel_at_period_end = bool(subscription.cancel_at_period_end)
    if before != account.status:
        record(
            "billing.subscription_status",
            target_type="billing_account",
            target_id=account.id,
            details={
                "before": status_in_japanese(before),
                "after": status_in_japanese(account.status),
                "subscription": subscription.id,
            },
        )
    sync_invoices(account)
    dunning.follow_subscription(account)
    db.session.flush()


def sync_invoices(account: BillingAccount) -> None:
    """The account's recent invoices as Stripe has them (numbers, states, hosted links, PDFs)."""
    listed = gateway.client().v1.invoices.list(
        params={"customer": account.stripe_customer_id, "limit": INVOICE_HISTORY}
    )
    known = {
        row.stripe_invoice_id: row
        for row in db.session.scalars(sa.select(BillingInvoice).where(BillingInvoice.account_id == account.id))
    }
    for invoice in listed.data:
        row = known.get(invoice.id) or BillingInvoice(account_id=account.id, stripe_invoice_id=invoice.id)
        row.number, row.status, row.total = invoice.number or "", invoice.status, invoice.total
        row.amount_paid, row.currency = invoice.amount_paid, invoice.currency
        row.hosted_invoice_url, row.invoice_pdf = invoice.hosted_invoice_url or "", invoice.invoice_pdf or ""
        row.period_start, row.period_end = _time(invoice.period_start), _time(invoice.period_end)
        row.issued_at, row.paid_at = _time(invoice.created), _time(invoice.status_transitions.paid_at)
        db.session.add(row)


def sync_quantity(account: BillingAccount) -> bool:
    """Set the subscription's quantity to the clinics counted now, prorated; True when it changed."""
    if not account.is_live:
        return False
    client = gateway.client()
    payer = accounts.payer_of_account(account)
    wanted = max(accounts.clinic_count(payer), 1)
    subscription = client.v1.subscriptions.retrieve(account.stripe_subscription_id)
    item = subscription["items"].data[0]
    if item.quantity == wanted:
        account.quantity = wanted
        return False
    client.v1.subscriptions.update(
        subscription.id,
        params={"items": [{"id": item.id, "quantity": wanted}], "proration_behavior": "create_prorations"},
    )
    record(
        "billing.quantity_changed",
        target_type="billing_account",
        target_id=account.id,
        details={"before": item.quantity, "after": wanted, "payer": payer.name},
    )
    account.quantity = wanted
    return True


def upcoming_invoice(account: BillingAccount):
    """Stripe's preview of the next invoice (prorations included), or None when there is none."""
    import stripe

    if not account.is_live or account.cancel_at_period_end:
        return None
    try:
        return gateway.client().v1.invoices.create_preview(
            params={"customer": account.stripe_customer_id, "subscription": account.stripe_subscription_id}
        )
    except stripe.StripeError as error:
        log.warning("billing: no invoice preview for account %s: %s", account.id, error)
        return None


def history(account: BillingAccount, limit: int = 20) -> list:
    """The account's audit events, newest first (checkout, status changes, quantities, dunning)."""
    from saas.audit.models import AuditEvent

    statement = (
        sa.select(AuditEvent)
        .where(
            AuditEvent.clinic_id.is_(None),
            AuditEvent.target_type == "billing_account",
            AuditEvent.target_id == str(account.id),
        )
        .order_by(AuditEvent.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(statement))


def invoices(account: BillingAccount) -> list[BillingInvoice]:
    statement = (
        sa.select(BillingInvoice)
        .where(BillingInvoice.account_id == account.id)
        .order_by(BillingInvoice.issued_at.desc(), BillingInvoice.id.desc())
        .limit(INVOICE_HISTORY)
    )
    return list(db.session.scalars(statement))
