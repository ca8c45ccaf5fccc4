"""The stand-in's memory: customers, products, prices, sessions, subscriptions, invoices, events.

One lock guards everything; webhooks are delivered after it is released (the product re-reads
objects while it handles them). The clock is real time plus an offset the control API advances.
"""

from __future__ import annotations

import calendar
import secrets
import string
import threading
import time
from dataclasses import dataclass, field

ALPHABET = string.ascii_letters + string.digits
SECONDS_PER_DAY = 86400


def new_id(prefix: str) -> str:
    """An id shaped like Stripe's: a prefix and 24 random letters and digits."""
    return f"{prefix}_{''.join(secrets.choice(ALPHABET) for _ in range(24))}"


def add_month(moment: int) -> int:
    """The same day and time one calendar month later (the last day when the month is shorter)."""
    t = time.gmtime(moment)
    year, month = (t.tm_year + 1, 1) if t.tm_mon == 12 else (t.tm_year, t.tm_mon + 1)
    day = min(t.tm_mday, calendar.monthrange(year, month)[1])
    return calendar.timegm((year, month, day, t.tm_hour, t.tm_min, t.tm_sec))


@dataclass
class Customer:
    id: str
    created: int
    email: str | None = None
    name: str | None = None
    metadata: dict = field(default_factory=dict)
    invoice_prefix: str = ""
    next_invoice_sequence: int = 1
    declines: int = 0  # the card declines this many next charges (control API)
    delinquent: bool = False
    has_subscription: bool = False


@dataclass
class Product:
    id: str
    created: int
    name: str
    description: str | None = None
    metadata: dict = field(default_factory=dict)
    unit_label: str | None = None
    default_price: str | None = None
    active: bool = True


@dataclass
class Price:
    id: str
    created: int
    product: str
    currency: str
    unit_amount: int
    interval: str = "month"
    lookup_key: str | None = None
    nickname: str | None = None
    metadata: dict = field(default_factory=dict)
    meter: str | None = None
    active: bool = True


@dataclass
class SubscriptionItem:
    id: str
    created: int
    price: str
    quantity: int


@dataclass
class Subscription:
    id: str
    created: int
    customer: str
    currency: str
    items: list[SubscriptionItem]
    period_start: int
    period_end: int
    billing_cycle_anchor: int
    status: str = "active"
    metadata: dict = field(default_factory=dict)
    latest_invoice: str | None = None
    cancel_at_period_end: bool = False
    canceled_at: int | None = None
    ended_at: int | None = None
    cancellation_reason: str | None = None


@dataclass
class Line:
    id: str
    description: str
    amount: int
    quantity: int
    unit_amount: int
    period_start: int
    period_end: int
    proration: bool = False
    subscription_item: str | None = None
    invoice_item: str | None = None


@dataclass
class Invoice:
    id: str
    created: int
    customer: str
    subscription: str | None
    currency: str
    lines: list[Line]
    period_start: int
    period_end: int
    billing_reason: str
    status: str = "draft"
    number: str | None = None
    attempt_count: int = 0
    paid_at: int | None = None
    next_payment_attempt: int | None = None
    customer_email: str | None = None
    customer_name: str | None = None

    @property
    def total(self) -> int:
        return sum(line.amount for line in self.lines)


@dataclass
class CheckoutSession:
    id: str
    created: int
    expires_at: int
    success_url: str
    cancel_url: str | None
    line_items: list[dict]
    currency: str
    amount_total: int
    customer: str | None = None
    customer_email: str | None = None
    client_reference_id: str | None = None
    metadata: dict = field(default_factory=dict)
    subscription_metadata: dict = field(default_factory=dict)
    locale: str | None = None
    status: str = "open"
    subscription: str | None = None
    invoice: str | None = None


@dataclass
class PortalSession:
    id: str
    created: int
    customer: str
    return_url: str
    locale: str | None = None


@dataclass
class Event:
    id: str
    created: int
    type: str
    snapshot: dict
    api_version: str
    previous: dict | None = None
    deliveries: list[dict] = field(default_factory=list)  # [{"status", "at"}] one per attempt


@dataclass
class StripeState:
    """Everything the stand-in knows, guarded by ``lock``."""

    lock: threading.RLock = field(default_factory=threading.RLock)
    offset: int = 0  # seconds the clock was advanced
    customers: dict[str, Customer] = field(default_factory=dict)
    products: dict[str, Product] = field(default_factory=dict)
    prices: dict[str, Price] = field(default_factory=dict)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    invoices: dict[str, Invoice] = field(default_factory=dict)
    pending_items: dict[str, list[Line]] = field(default_factory=dict)  # subscription id → prorations
    checkout_sessions: dict[str, CheckoutSession] = field(default_factory=dict)
    portal_sessions: dict[str, PortalSession] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    webhook_url: str | None = None
    webhook_secret: str | None = None
    hold_events: bool = False  # keep events for an explicit (re)ordered delivery
    held: list[str] = field(default_factory=list)
    idempotency: dict[tuple[str, str], tuple[int, dict]] = field(default_factory=dict)
    requests: list[dict] = field(default_factory=list)
    base_url: str = "http://127.0.0.1"  # where the stand-in is reached (pages, hosted invoices)

    def now(self) -> int:
        return int(time.time()) + self.offset

    def reset(self) -> None:
        fresh = StripeState()
        for name in self.__dataclass_fields__:
            if name != "lock":
                setattr(self, name, getattr(fresh, name))
