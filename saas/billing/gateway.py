"""The one place that builds a Stripe client: the official library, pointed by configuration.

``STRIPE_API_BASE`` is Stripe itself in production and the stand-in (``saas/stripe_sandbox``)
in development and tests; nothing else differs.
"""

from __future__ import annotations

import stripe
from flask import current_app

NETWORK_RETRIES = 2  # the library retries connection errors and 409/429/5xx with idempotency keys


class BillingNotConfigured(RuntimeError):
    """STRIPE_SECRET_KEY is not set: billing is off for this deployment."""


def is_configured() -> bool:
    return bool(current_app.config.get("STRIPE_SECRET_KEY"))


def client() -> stripe.StripeClient:
    """A Stripe client for the configured key and API base."""
    if not is_configured():
        raise BillingNotConfigured("STRIPE_SECRET_KEY is not set")
    base = current_app.config.get("STRIPE_API_BASE") or stripe.DEFAULT_API_BASE
    return stripe.StripeClient(
        current_app.config["STRIPE_SECRET_KEY"], base_addresses={"api": base}, max_network_retries=NETWORK_RETRIES
    )
