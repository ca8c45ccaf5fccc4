"""A local stand-in for Stripe Billing over real HTTP: customers, products and prices, Checkout
Sessions, Customer Portal sessions, subscriptions with prorated quantity changes, invoices, and
webhooks signed as Stripe signs them. Development, tests and demo only; never imported by
product code. See README.md."""

from __future__ import annotations

from .app import create_stripe_sandbox_app

__all__ = ["create_stripe_sandbox_app"]
