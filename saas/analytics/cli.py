"""``flask analytics backfill``: build the daily roll-ups from the stored history."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from saas.analytics import jobs

group = AppGroup("analytics", help="Analytics roll-ups.")


@group.command("backfill")
@click.option("--days", default=400, show_default=True, help="How many Japan days back, today included.")
def backfill(days: int) -> None:
    """Recompute every clinic's daily roll-ups for the last DAYS days (safe to run again)."""
    click.echo(f"roll-up rows written: {jobs.catch_up(days)}")


def init_app(app: Flask) -> None:
    app.cli.add_command(group)
