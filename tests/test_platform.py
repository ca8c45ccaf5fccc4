"""Health, migrations on the configured database, error pages, CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from saas.auth.models import User
from saas.extensions import db

ROOT = Path(__file__).resolve().parent.parent


def test_healthz_reports_database_and_redis(client):
    body = client.get("/healthz").get_json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] and body["redis"]["ok"]


def test_unknown_page_is_a_japanese_404(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "ページが見つかりません" in response.get_data(as_text=True)


def test_english_is_available(client):
    page = client.get("/auth/login?lang=en").get_data(as_text=True)
    assert "Staff login" in page and "スタッフログイン" not in page
    assert "スタッフログイン" in client.get("/auth/login?lang=ja").get_data(as_text=True)


def _alembic(database_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": database_url, "FLASK_APP": "saas", "SANDBOX_ENABLED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "flask", "db", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture
def scratch_database_url(tmp_path):
    """An empty database of the same kind as the suite's: a SQLite file, or a Postgres schema."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path / 'migrations.sqlite3'}"
        return
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS migration_check CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA migration_check"))
    separator = "&" if "?" in url else "?"
    yield f"{url}{separator}options=-csearch_path%3Dmigration_check"
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS migration_check CASCADE"))
    engine.dispose()


def test_migrations_upgrade_match_the_models_and_downgrade(scratch_database_url):
    heads = _alembic(scratch_database_url, "heads")
    assert heads.returncode == 0, heads.stderr
    assert len([line for line in heads.stdout.splitlines() if "(head)" in line]) == 1, heads.stdout
    upgrade = _alembic(scratch_database_url, "upgrade")
    assert upgrade.returncode == 0, upgrade.stderr
    check = _alembic(scratch_database_url, "check")
    assert check.returncode == 0, "models and migrations differ: run `flask db migrate`\n" + check.stderr[-1500:]
    downgrade = _alembic(scratch_database_url, "downgrade", "base")
    assert downgrade.returncode == 0, downgrade.stderr


def test_demo_command_loads_tenants_and_prints_logins(runner):
    result = runner.invoke(args=["demo"])
    assert result.exit_code == 0, result.output
    assert "responder@sakura.example" in result.output and "tsunagu-demo-2026" in result.output
    assert db.session.scalar(sa.select(sa.func.count(User.id))) >= 9
    again = runner.invoke(args=["demo"])  # idempotent
    assert again.exit_code == 0
    assert db.session.scalar(sa.select(sa.func.count(User.id))) == 9


def test_create_admin_makes_a_platform_owner(runner):
    result = runner.invoke(
        args=["create-admin", "--email", "boss@example.jp", "--password", "s3cret-pass"], input="s3cret-pass\n"
    )
    assert result.exit_code == 0, result.output
    user = db.session.scalars(sa.select(User).where(User.email == "boss@example.jp")).one()
    assert user.roles == {"owner"} and user.needs_two_factor


FAILING_REQUEST_AFTER_MIGRATING = """
from flask_migrate import upgrade
from saas import create_app

app = create_app()

@app.get("/boom")
def boom():
    raise RuntimeError("the portal failed here")

with app.app_context():
    upgrade()  # as flask dev does before it serves
print(app.test_client().get("/boom").status_code)
"""


def test_a_failing_request_is_logged_with_its_traceback_after_flask_dev_migrated(scratch_database_url):
    """Alembic's logging set-up had disabled the app's loggers: the demo's 500s left no trace at all."""
    env = {**os.environ, "DATABASE_URL": scratch_database_url, "SANDBOX_ENABLED": "1"}
    result = subprocess.run(
        [sys.executable, "-c", FAILING_REQUEST_AFTER_MIGRATING],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.stdout.strip() == "500", result.stderr[-2000:]
    assert "Exception on /boom" in result.stderr and "RuntimeError: the portal failed here" in result.stderr
