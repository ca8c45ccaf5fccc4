"""`flask library load`: load the shipped FAQ set and seasonal templates into the platform library."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from saas.extensions import db

library = AppGroup("library", help="共有ライブラリ（FAQ・テンプレート）")


@library.command("load")
def load_command() -> None:
    """Create or refresh the standard library from saas/library/data/*.yaml (idempotent)."""
    from saas.library.services import load_standard_library

    for library_set, changed in load_standard_library():
        click.echo(f"{library_set.key}: {library_set.name}（{len(library_set.items)}件、変更 {changed}件）")
    db.session.commit()


def init_app(app: Flask) -> None:
    app.cli.add_command(library)
