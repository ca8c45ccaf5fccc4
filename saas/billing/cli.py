"""Commands: make Stripe's prices match plans.yaml, run the billing sweep now."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

billing_cli = AppGroup("billing", help="Stripe Billing: prices, subscriptions, dunning.")


@billing_cli.command("sync-prices")
def sync_prices_command() -> None:
    """Create the Stripe product and price of every plan in saas/billing/plans.yaml (safe to run again)."""
    from saas.billing import gateway, plans

    client = gateway.client()
    for plan in plans.plans().values():
        click.echo(
            f"{plan.key}: {plan.name} {plan.unit_amount:,} {plan.currency}/{plan.interval} → {plans.price_id(client, plan)}"
        )


@billing_cli.command("sweep")
def sweep_command() -> None:
    """Run the dunning steps that are due and fix drifted quantities (cron does it every 15 minutes)."""
    from saas.billing.jobs import sweep_billing

    click.echo(f"{sweep_billing()} account(s) checked")


def init_app(app: Flask) -> None:
    app.cli.add_command(billing_cli)
