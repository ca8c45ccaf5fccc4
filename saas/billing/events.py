"""Stripe webhook events: verified, recorded once, and handled by re-reading the object they name.

Handled inline, in the request, on purpose: Stripe sends a few events per account per month
(not LINE's thousands a second), the work is one or two API reads and a commit, and the event
row and the state it causes commit together. A failure rolls both back and answers 500, and
Stripe redelivers (with back-off, for up to three days): the durable retry is Stripe's own, so
no queue of ours has to hold the event.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
import stripe
from sqlalchemy.exc import IntegrityError

from saas.billing import services
from saas.billing.models import BillingAccount, StripeEvent
from saas.extensions import db

log = logging.getLogger(__name__)
TOLERANCE_SECONDS = 300
HANDLED = frozenset(
    {
        "checkout.session.completed",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "invoice.paid",
        "invoice.payment_failed",
    }
)


class BadSignature(ValueError):
    """The payload is not signed with our endpoint secret (or is too old, or is not JSON)."""


def verify(payload: bytes, header: str, secret: str) -> stripe.Event:
    """The event, when ``Stripe-Signature`` matches (within 300 s); BadSignature otherwise."""
    try:
        return stripe.Webhook.construct_event(payload, header, secret, tolerance=TOLERANCE_SECONDS)
    except (stripe.SignatureVerificationError, ValueError) as error:
        raise BadSignature(str(error)) from error


def seen(event_id: str) -> bool:
    return db.session.get(StripeEvent, event_id) is not None


def receive(event: stripe.Event) -> str:
    """Handle the event once; 'duplicate' when its id was handled before. Commits."""
    if seen(event.id):
        return "duplicate"
    account = handle(event)
    db.session.add(StripeEvent(id=event.id, type=event.type, account_id=getattr(account, "id", None)))
    try:
        db.session.commit()
    except IntegrityError:  # the same event handled concurrently by another process: theirs stands
        db.session.rollback()
        return "duplicate"
    return "handled" if event.type in HANDLED else "ignored"


def _account_of(obj) -> BillingAccount | None:
    account = services.account_by_customer(obj.get("customer"))
    if account is None:
        reference = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("tsunagu_account")
        account = db.session.get(BillingAccount, int(reference)) if str(reference or "").isdigit() else None
    return account


def _subscription_of_invoice(invoice_id: str) -> str | None:
    invoice = services.gateway.client().v1.invoices.retrieve(invoice_id).to_dict()
    parent = invoice.get("parent") or {}
    details = parent.get("subscription_details") or {}
    return invoice.get("subscription") or details.get("subscription")


def handle(event: stripe.Event) -> BillingAccount | None:
    """Apply what Stripe says NOW about the event's object (the payload only says which object)."""
    if event.type not in HANDLED:
        return None
    obj = event.data.object.to_dict()
    account = _account_of(obj)
    if account is None:
        log.warning("billing: %s %s names no account of ours", event.type, event.id)
        return None
    if event.type == "checkout.session.completed":
        services.complete_checkout(obj["id"])
    elif event.type.startswith("customer.subscription."):
        services.sync_subscription(account, obj["id"])
    else:
        subscription_id = _subscription_of_invoice(obj["id"])
        if subscription_id:
            services.sync_subscription(account, subscription_id)
        else:
            services.sync_invoices(account)
    return account


def handled_count() -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(StripeEvent)) or 0
