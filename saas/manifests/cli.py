"""`flask tenants apply FILE|DIR [--dry-run]` and `flask tenants export CLINIC`."""

from __future__ import annotations

from pathlib import Path

import click
import sqlalchemy as sa
from flask import Flask
from flask.cli import AppGroup

from saas.extensions import db
from saas.tenancy.scoping import platform_scope

tenants = AppGroup("tenants", help="テナントマニフェスト（tenants/*.yaml）の適用と書き出し")


@tenants.command("apply")
@click.argument("target", type=click.Path(exists=True, path_type=Path))
@click.option("--dry-run", is_flag=True, help="変更内容を表示するだけで適用しない")
def apply_command(target: Path, dry_run: bool) -> None:
    """Apply manifests idempotently, each file in one transaction."""
    from saas.manifests.apply import ManifestError, apply_file, manifest_files

    failed = False
    for path in manifest_files(target):
        try:
            with platform_scope("tenant manifests"):
                outcome = apply_file(path, dry_run=dry_run)
        except ManifestError as error:
            failed = True
            for line in error.lines():
                click.echo(f"エラー / error: {line}", err=True)
            click.echo(f"{error.file}: このファイルは何も適用していません / nothing applied", err=True)
            continue
        _report(outcome, dry_run)
    if failed:
        raise SystemExit(1)


def _report(outcome, dry_run: bool) -> None:
    for warning in outcome.warnings:
        click.echo(f"注意 / warning: {warning}", err=True)
    if not outcome.changes:
        click.echo(f"{outcome.file}: 変更はありません / no changes")
        return
    heading = "適用予定の変更（dry run）" if dry_run else "適用した変更"
    click.echo(f"{outcome.file}: {heading} / {len(outcome.changes)} change(s)")
    for change in outcome.changes:
        click.echo(f"  - {change}")


@tenants.command("export")
@click.argument("clinic_slug")
@click.option("-o", "--output", type=click.Path(path_type=Path), help="書き出し先（省略時は標準出力）")
def export_command(clinic_slug: str, output: Path | None) -> None:
    """Write the manifest that recreates a clinic."""
    from saas.manifests.export import manifest_for, to_yaml
    from saas.tenancy.models import Clinic

    with platform_scope("tenant manifests"):
        clinic = db.session.scalars(sa.select(Clinic).where(Clinic.slug == clinic_slug)).first()
        if clinic is None:
            raise click.ClickException(f"クリニック {clinic_slug} はありません")
        text = to_yaml(manifest_for(clinic))
        db.session.rollback()  # export only reads; drop defaults rows it may have created
    if output:
        output.write_text(text, encoding="utf-8")
        click.echo(f"{output} に書き出しました")
    else:
        click.echo(text, nl=False)


def init_app(app: Flask) -> None:
    app.cli.add_command(tenants)
