"""Commands: load LINE's plans from the data file, and put a clinic on a plan."""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup

from saas.extensions import db

quota_cli = AppGroup("quota", help="LINE plans and message quota.")


@quota_cli.command("load-plans")
def load_plans_command() -> None:
    """Create or update LINE's plans from saas/quota/plans.yaml (safe to run again)."""
    from saas.quota.plans import load_plans

    for plan in load_plans():
        click.echo(f"{plan.code}: {plan.name} {plan.monthly_fee_yen:,}円 / {plan.free_messages:,}通")


@quota_cli.command("set-plan")
@click.argument("clinic_slug")
@click.argument("plan_code")
@click.option("--extra/--no-extra", default=False, help="Additional messages allowed (standard plan).")
@click.option("--cap", type=int, default=None, help="Most additional messages per month.")
def set_plan_command(clinic_slug: str, plan_code: str, extra: bool, cap: int | None) -> None:
    """Put a clinic on a LINE plan."""
    from saas.quota.plans import set_clinic_plan
    from saas.tenancy.models import Clinic
    from saas.tenancy.scoping import tenant_scope

    clinic = db.session.scalar(sa.select(Clinic).filter_by(slug=clinic_slug))
    if clinic is None:
        raise click.ClickException(f"クリニック {clinic_slug} が見つかりません")
    with tenant_scope(clinic.id):
        try:
            set_clinic_plan(clinic.id, plan_code, extra_allowed=extra, extra_cap=cap)
        except (LookupError, ValueError) as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"{clinic.name}: {plan_code}")


def init_app(app: Flask) -> None:
    app.cli.add_command(quota_cli)
