"""Re-encrypt every ``EncryptedText`` column with the newest key of ``ENCRYPTION_KEY``.

Columns are discovered from the models' metadata, so a capability that adds an encrypted
column is covered without editing this module. Stored tokens are read raw and rotated with
``MultiFernet.rotate``: plaintext never leaves the crypto module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import sqlalchemy as sa

from saas import crypto
from saas.extensions import db
from saas.tenancy.scoping import platform_scope

BATCH = 500


@dataclass(frozen=True)
class EncryptedColumn:
    table: sa.Table
    column: sa.Column

    @property
    def name(self) -> str:
        return f"{self.table.name}.{self.column.name}"


def encrypted_columns() -> list[EncryptedColumn]:
    """Every column of every table whose type is ``EncryptedText``."""
    found = []
    for table in db.metadata.sorted_tables:
        for column in table.columns:
            if isinstance(column.type, crypto.EncryptedText):
                found.append(EncryptedColumn(table, column))
    return found


def _primary_key(table: sa.Table) -> sa.Column:
    (pk,) = table.primary_key.columns  # every model here has a single integer id
    return pk


def _raw_batches(target: EncryptedColumn) -> Iterator[list[tuple]]:
    pk = _primary_key(target.table)
    raw = sa.type_coerce(target.column, sa.Text).label("raw")
    last = None
    while True:
        statement = sa.select(pk, raw).where(target.column.is_not(None)).order_by(pk).limit(BATCH)
        if last is not None:
            statement = statement.where(pk > last)
        rows = db.session.execute(statement).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def rotate_column(target: EncryptedColumn) -> int:
    """Re-encrypt one column's values in batches; returns how many values were rewritten."""
    pk = _primary_key(target.table)
    count = 0
    for rows in _raw_batches(target):
        for row_id, token in rows:
            rotated = crypto.rotate(token)
            db.session.execute(
                target.table.update().where(pk == row_id).values({target.column.name: sa.literal(rotated, sa.Text)})
            )
            count += 1
    return count


def rotate_all() -> dict[str, int]:
    """Rotate every encrypted column in one transaction; any undecryptable value aborts it all."""
    results = {}
    with platform_scope("key rotation"):
        try:
            for target in encrypted_columns():
                results[target.name] = rotate_column(target)
        except BaseException:
            db.session.rollback()
            raise
        db.session.commit()
    return results
