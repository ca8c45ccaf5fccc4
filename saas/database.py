"""SQLite set up for concurrent use: the embedded default must never answer "database is locked".

Postgres needs nothing here. For SQLite every new connection gets:

- WAL journal: readers never wait for the writer, the writer never waits for readers;
- a 30 s busy timeout: a writer queues behind another instead of failing after pysqlite's 5 s;
- immediate write transactions: the write lock is taken by ``BEGIN IMMEDIATE`` before the first
  write (or savepoint) of a transaction, so a transaction never has to upgrade a read snapshot
  to a write lock, which SQLite refuses at once (``SQLITE_BUSY``) without waiting.

Reads before a transaction's first write run in autocommit, as pysqlite always did: each sees
the newest committed data, like Postgres' READ COMMITTED.
"""

from __future__ import annotations

import sqlite3

import sqlalchemy as sa
from sqlalchemy import event

BUSY_TIMEOUT_MS = 30_000
_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "SAVEPOINT")


def _on_connect(dbapi_connection, _record) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    cursor = dbapi_connection.cursor()
    cursor.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA journal_mode = WAL")
    cursor.execute("PRAGMA synchronous = NORMAL")  # safe with WAL; a commit costs no fsync
    cursor.close()


def _before_execute(connection, _cursor, statement: str, _parameters, _context, _executemany) -> None:
    dbapi_connection = connection.connection.dbapi_connection
    if not isinstance(dbapi_connection, sqlite3.Connection) or dbapi_connection.in_transaction:
        return
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return  # each statement commits itself: a BEGIN here would hold its writes until a rollback
    if statement.lstrip()[:9].upper().startswith(_WRITES):
        dbapi_connection.execute("BEGIN IMMEDIATE")


def install() -> None:
    """Register the hooks on every engine (idempotent); they act on SQLite connections only."""
    if not event.contains(sa.engine.Engine, "connect", _on_connect):
        event.listen(sa.engine.Engine, "connect", _on_connect)
        event.listen(sa.engine.Engine, "before_cursor_execute", _before_execute)
