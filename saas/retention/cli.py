"""``flask retention purge``: apply every clinic's retention settings now."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from saas.retention import services

group = AppGroup("retention", help="Data retention (webhook events, send bookkeeping, message bodies).")


@group.command("purge")
def purge() -> None:
    """Delete and archive what every clinic's retention settings say has expired."""
    try:
        done, failed = services.purge_all(), None
    except services.PurgeIncomplete as incomplete:
        done, failed = incomplete.done, incomplete
    click.echo(
        f"webhook events {done.webhook_events}, delivery recipients {done.delivery_recipients}, "
        f"message bodies archived {done.message_bodies}, message receipts {done.message_receipts}, "
        f"link clicks {done.link_clicks}"
    )
    for path in done.archives:
        click.echo(f"archive: {path}")
    if failed:
        raise click.ClickException(f"{failed} (see the log for each clinic's error)")


def init_app(app: Flask) -> None:
    app.cli.add_command(group)
