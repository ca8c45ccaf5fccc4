"""``flask rotate-encryption``: move every encrypted value to the newest key."""

from __future__ import annotations

import click
from flask import Flask

from saas.crypto import DecryptionError


@click.command("rotate-encryption")
def rotate_encryption() -> None:
    """Re-encrypt every EncryptedText column with the first key of ENCRYPTION_KEY.

    Put the new key first (ENCRYPTION_KEY=new,old), run this, then drop the old key.
    """
    from saas.audit.services import record
    from saas.extensions import db
    from saas.security.rotation import rotate_all

    try:
        results = rotate_all()
    except (DecryptionError, ValueError) as exc:
        raise click.ClickException(f"鍵の切り替えを中止しました（変更なし）: {exc}") from exc
    for column, count in results.items():
        click.echo(f"  {column}: {count}")
    record("security.key_rotation", details=results)
    db.session.commit()
    click.echo(f"{sum(results.values())}件の暗号化データを最新の鍵で再暗号化しました。古い鍵は削除できます。")


def init_app(app: Flask) -> None:
    app.cli.add_command(rotate_encryption)
