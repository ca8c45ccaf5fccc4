"""What happens to subscriptions and invoices: checkout, quantity changes with proration,
renewals, payment attempts and cancellation. Each function runs under the state lock and
returns the ids of the events it emitted (delivered by the caller once the lock is released)."""

from __future__ import annotations

from . import objects
from .state import (
    CheckoutSession,
    Event,
    Invoice,
    Line,
    StripeState,
    Subscription,
    SubscriptionItem,
    add_month,
    new_id,
)

API_VERSION = "2026-10-28.endive"
RETRY_DAYS = 3  # Smart Retries stand-in: the next automatic attempt of a failed invoice


def emit(st: StripeState, kind: str, snapshot: dict, previous: dict | None = None) -> str:
    """Record an event (its object as it is now) and return its id."""
    event = Event(new_id("evt"), st.now(), kind, snapshot, API_VERSION, previous)
    st.events[event.id] = event
    return event.id


def subscription_json(st: StripeState, sub: Subscription) -> dict:
    return objects.subscription(sub, st.prices)


def invoice_json(st: StripeState, inv: Invoice) -> dict:
    return objects.invoice(inv, st.base_url)


def _plan_line(st: StripeState, sub: Subscription, item: SubscriptionItem, start: int, end: int) -> Line:
    price = st.prices[item.price]
    name = st.products[price.product].name
    return Line(
        new_id("il"),
        f"{item.quantity} × {name}",
        price.unit_amount * item.quantity,
        item.quantity,
        price.unit_amount,
        start,
        end,
        subscription_item=item.id,
    )


def _new_invoice(st: StripeState, sub: Subscription, lines: list[Line], reason: str, start: int, end: int) -> Invoice:
    customer = st.customers[sub.customer]
    number = f"{customer.invoice_prefix}-{customer.next_invoice_sequence:04d}"
    customer.next_invoice_sequence += 1
    invoice = Invoice(
        new_id("in"),
        st.now(),
        sub.customer,
        sub.id,
        sub.currency,
        lines,
        start,
        end,
        reason,
        status="open",
        number=number,
        customer_email=customer.email,
        customer_name=customer.name,
    )
    st.invoices[invoice.id] = invoice
    sub.latest_invoice = invoice.id
    return invoice


def attempt_payment(st: StripeState, invoice: Invoice) -> list[str]:
    """Charge the customer's card: the invoice is paid, or stays open and the subscription falls past due."""
    customer = st.customers[invoice.customer]
    sub = st.subscriptions.get(invoice.subscription or "")
    invoice.attempt_count += 1
    if customer.declines > 0:
        customer.declines -= 1
        customer.delinquent = True
        invoice.next_payment_attempt = st.now() + RETRY_DAYS * 86400
        events = [emit(st, "invoice.payment_failed", invoice_json(st, invoice))]
        if sub is not None and sub.status != "past_due":
            sub.status = "past_due"
            events.append(emit(st, "customer.subscription.updated", subscription_json(st, sub), {"status": "active"}))
        return events
    invoice.status, invoice.paid_at, invoice.next_payment_attempt = "paid", st.now(), None
    customer.delinquent = any(i.status == "open" for i in st.invoices.values() if i.customer == customer.id)
    events = [emit(st, "invoice.paid", invoice_json(st, invoice))]
    if sub is not None and sub.status in ("past_due", "unpaid", "incomplete") and not customer.delinquent:
        previous = {"status": sub.status}
        sub.status = "active"
        events.append(emit(st, "customer.subscription.updated", subscription_json(st, sub), previous))
    return events


def complete_checkout(st: StripeState, cs: CheckoutSession) -> list[str]:
    """The customer pays on the Checkout page: a subscription, its first invoice paid, the session complete."""
    customer = st.customers[cs.customer]
    customer.has_subscription = True
    now = st.now()
    items = [SubscriptionItem(new_id("si"), now, li["price"], int(li.get("quantity") or 1)) for li in cs.line_items]
    sub = Subscription(
        new_id("sub"),
        now,
        customer.id,
        cs.currency,
        items,
        now,
        add_month(now),
        now,
        "incomplete",
        cs.subscription_metadata,
    )
    st.subscriptions[sub.id] = sub
    events = [emit(st, "customer.subscription.created", subscription_json(st, sub))]
    lines = [_plan_line(st, sub, item, sub.period_start, sub.period_end) for item in items]
    invoice = _new_invoice(st, sub, lines, "subscription_create", sub.period_start, sub.period_end)
    events.append(emit(st, "invoice.finalized", invoice_json(st, invoice)))
    events += attempt_payment(st, invoice)
    cs.status, cs.subscription, cs.invoice = "complete", sub.id, invoice.id
    events.append(emit(st, "checkout.session.completed", objects.checkout_session(cs, st.base_url)))
    return events


def change_quantity(
    st: StripeState, sub: Subscription, item: SubscriptionItem, quantity: int, prorate: bool
) -> list[str]:
    """A new quantity now; with prorations the difference for the rest of the period goes on the next invoice."""
    if quantity == item.quantity:
        return []
    previous_json = subscription_json(st, sub)["items"]
    price = st.prices[item.price]
    if prorate:
        now = min(max(st.now(), sub.period_start), sub.period_end)
        share = (sub.period_end - now) / max(sub.period_end - sub.period_start, 1)
        name = st.products[price.product].name
        pending = st.pending_items.setdefault(sub.id, [])
        for qty, sign, words in ((item.quantity, -1, "Unused time on"), (quantity, 1, "Remaining time on")):
            amount = sign * round(price.unit_amount * qty * share)
            pending.append(
                Line(
                    new_id("il"),
                    f"{words} {qty} × {name}",
                    amount,
                    qty,
                    price.unit_amount,
                    now,
                    sub.period_end,
                    proration=True,
                    subscription_item=item.id,
                    invoice_item=new_id("ii"),
                )
            )
    item.quantity = quantity
    return [emit(st, "customer.subscription.updated", subscription_json(st, sub), {"items": previous_json})]


def upcoming(st: StripeState, sub: Subscription) -> Invoice:
    """The invoice the next renewal would create (never stored): prorations plus the next period."""
    start, end = sub.period_end, add_month(sub.period_end)
    lines = list(st.pending_items.get(sub.id, []))
    lines += [_plan_line(st, sub, item, start, end) for item in sub.items]
    customer = st.customers[sub.customer]
    return Invoice(
        new_id("upcoming_in"),
        st.now(),
        sub.customer,
        sub.id,
        sub.currency,
        lines,
        sub.period_start,
        sub.period_end,
        "upcoming",
        customer_email=customer.email,
        customer_name=customer.name,
    )


def renew(st: StripeState, sub: Subscription) -> list[str]:
    """The period ended: cancel if asked to, else invoice the next period (with prorations) and charge."""
    if sub.cancel_at_period_end:
        return cancel_now(st, sub, "cancellation_requested")
    previous = {"current_period_start": sub.period_start, "current_period_end": sub.period_end}
    sub.period_start, sub.period_end = sub.period_end, add_month(sub.period_end)
    lines = st.pending_items.pop(sub.id, [])
    lines += [_plan_line(st, sub, item, sub.period_start, sub.period_end) for item in sub.items]
    events = [emit(st, "customer.subscription.updated", subscription_json(st, sub), previous)]
    invoice = _new_invoice(st, sub, lines, "subscription_cycle", sub.period_start, sub.period_end)
    events.append(emit(st, "invoice.finalized", invoice_json(st, invoice)))
    return events + attempt_payment(st, invoice)


def cancel_now(st: StripeState, sub: Subscription, reason: str = "cancellation_requested") -> list[str]:
    sub.status, sub.canceled_at, sub.ended_at, sub.cancellation_reason = "canceled", st.now(), st.now(), reason
    return [emit(st, "customer.subscription.deleted", subscription_json(st, sub))]


def set_cancel_at_period_end(st: StripeState, sub: Subscription, value: bool) -> list[str]:
    if sub.cancel_at_period_end == value:
        return []
    sub.cancel_at_period_end = value
    if value:
        sub.canceled_at = st.now()
    else:
        sub.canceled_at = None
    return [emit(st, "customer.subscription.updated", subscription_json(st, sub), {"cancel_at_period_end": not value})]


def advance(st: StripeState, seconds: int) -> list[str]:
    """Move the clock; every subscription whose period ended renews (once per period passed)."""
    st.offset += seconds
    events: list[str] = []
    for sub in list(st.subscriptions.values()):
        while sub.status != "canceled" and sub.period_end <= st.now():
            events += renew(st, sub)
    return events


def pay_open_invoices(st: StripeState, customer_id: str) -> list[str]:
    """The customer updated the card (portal or hosted invoice page): a working card, open invoices paid."""
    st.customers[customer_id].declines = 0
    events: list[str] = []
    for invoice in [i for i in st.invoices.values() if i.customer == customer_id and i.status == "open"]:
        events += attempt_payment(st, invoice)
    return events
