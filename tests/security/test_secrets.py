"""Issue 10 item 2: outside development and tests the app does not start without its own
SECRET_KEY and an ENCRYPTION_KEY that is not derived from it — started as the Procfile does."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet

from saas import create_app
from saas.config import ROOT, ConfigurationError
from saas.crypto import derived_key

SECRET = "x" * 48


def _production(**settings) -> dict:
    return {"TESTING": False, "SANDBOX_ENABLED": False, "PUBLIC_BASE_URL": "https://portal.example.jp", **settings}


def _clean_env(tmp_path, **extra) -> dict:
    keep = {"PATH", "HOME", "LANG", "DATABASE_URL", "REDIS_URL"}
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(TSUNAGU_INSTANCE_DIR=str(tmp_path), PUBLIC_BASE_URL="https://portal.example.jp", **extra)
    return env


def test_gunicorn_as_in_the_procfile_refuses_to_start_without_secrets(tmp_path):
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    command = [gunicorn, "--config", "gunicorn.conf.py", "--workers", "1", "--bind", "127.0.0.1:0", "saas:create_app()"]
    finished = subprocess.run(command, cwd=ROOT, env=_clean_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert finished.returncode != 0
    assert "SECRET_KEY is not set" in finished.stderr and "secrets.token_urlsafe" in finished.stderr
    assert "ENCRYPTION_KEY is not set" in finished.stderr and "Fernet.generate_key" in finished.stderr


def test_flask_commands_refuse_to_run_without_secrets(tmp_path):
    command = [sys.executable, "-m", "flask", "--app", "saas", "routes"]
    finished = subprocess.run(command, cwd=ROOT, env=_clean_env(tmp_path), capture_output=True, text=True, timeout=120)
    assert finished.returncode != 0 and "SECRET_KEY is not set" in finished.stderr


def test_an_encryption_key_derived_from_the_secret_key_is_refused():
    with pytest.raises(ConfigurationError, match="derived from SECRET_KEY"):
        create_app(_production(SECRET_KEY=SECRET, ENCRYPTION_KEY=derived_key(SECRET).decode()))


def test_the_development_secret_and_short_keys_are_refused():
    with pytest.raises(ConfigurationError, match="SECRET_KEY is not set"):
        create_app(_production(SECRET_KEY="dev-only-secret-change-me", ENCRYPTION_KEY=Fernet.generate_key().decode()))
    with pytest.raises(ConfigurationError, match="too short"):
        create_app(_production(SECRET_KEY="short", ENCRYPTION_KEY=Fernet.generate_key().decode()))
    with pytest.raises(ConfigurationError, match="not a Fernet key"):
        create_app(_production(SECRET_KEY=SECRET, ENCRYPTION_KEY="not-a-key"))


def test_with_its_own_secrets_a_deployment_starts():
    app = create_app(_production(SECRET_KEY=SECRET, ENCRYPTION_KEY=Fernet.generate_key().decode()))
    assert app.config["SECRET_KEY"] == SECRET
