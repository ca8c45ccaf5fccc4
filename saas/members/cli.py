"""``flask sso add``: register an agency's OpenID Connect provider for staff sign-in."""

from __future__ import annotations

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup

from saas.extensions import db

sso_cli = AppGroup("sso", help="Single sign-on providers (OpenID Connect) per agency.")


@sso_cli.command("add")
@click.option("--agency", "agency_slug", required=True, help="Agency slug.")
@click.option("--name", required=True)
@click.option("--metadata-url", required=True, help="https://issuer/.well-known/openid-configuration")
@click.option("--client-id", required=True)
@click.option("--client-secret", required=True, prompt=True, hide_input=True)
@click.option("--domains", required=True, help="Comma-separated email domains, e.g. example-clinic.jp")
def add(agency_slug: str, name: str, metadata_url: str, client_id: str, client_secret: str, domains: str) -> None:
    """Register a provider; the client secret is stored encrypted."""
    from saas.audit.services import record
    from saas.members.models import SsoProvider
    from saas.tenancy.models import Agency

    agency = db.session.scalars(sa.select(Agency).where(Agency.slug == agency_slug)).first()
    if agency is None:
        raise click.ClickException(f"代理店 {agency_slug} が見つかりません")
    provider = SsoProvider(
        agency_id=agency.id,
        name=name,
        metadata_url=metadata_url,
        client_id=client_id,
        client_secret=client_secret,
        email_domains=domains.lower(),
    )
    db.session.add(provider)
    db.session.flush()
    record("sso_provider.create", target_type="sso_provider", target_id=provider.id, details={"domains": domains})
    db.session.commit()
    click.echo(f"SSOプロバイダ「{name}」を登録しました（ID {provider.id}）。")


def init_app(app: Flask) -> None:
    app.cli.add_command(sso_cli)
