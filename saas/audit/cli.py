"""``flask audit purge``: the retention purge from the command line."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from saas.audit import services

audit_cli = AppGroup("audit", help="Audit log maintenance.")


@audit_cli.command("purge")
def purge() -> None:
    """Delete audit events older than AUDIT_RETENTION_DAYS (default 1825 days)."""
    deleted = services.purge_expired()
    click.echo(f"{services.retention_days()}日より古い監査ログを{deleted}件削除しました。")


def init_app(app: Flask) -> None:
    app.cli.add_command(audit_cli)
