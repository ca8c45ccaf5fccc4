"""Keyset pagination: the cursor is the last id of the page, never an OFFSET."""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db

INT32_MAX = 2**31 - 1


def page(statement: sa.Select, id_column, query, *, descending: bool = False) -> tuple[list, int | None]:
    """One page of ``statement`` ordered by ``id_column`` after the query's cursor, and the next cursor."""
    if query.after is not None:
        statement = statement.where(_after(id_column, query.after, descending))
    order = id_column.desc() if descending else id_column.asc()
    rows = list(db.session.scalars(statement.order_by(order).limit(query.limit + 1)))
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return rows, rows[-1].id if more and rows else None


def _after(id_column, cursor: int, descending: bool):
    """Rows past the cursor. A cursor beyond a 32-bit id column's range (a 64-bit cursor is valid in the
    document) is past every row or before every row; Postgres would refuse to compare it."""
    if cursor > INT32_MAX and not isinstance(id_column.type, sa.BigInteger):
        return sa.true() if descending else sa.false()
    return id_column < cursor if descending else id_column > cursor
