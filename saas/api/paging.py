"""Keyset pagination: the cursor is the last id of the page, never an OFFSET."""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db


def page(statement: sa.Select, id_column, query, *, descending: bool = False) -> tuple[list, int | None]:
    """One page of ``statement`` ordered by ``id_column`` after the query's cursor, and the next cursor."""
    if query.after is not None:
        statement = statement.where(id_column < query.after if descending else id_column > query.after)
    order = id_column.desc() if descending else id_column.asc()
    rows = list(db.session.scalars(statement.order_by(order).limit(query.limit + 1)))
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    return rows, rows[-1].id if more and rows else None
