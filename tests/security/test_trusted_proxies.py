"""TRUSTED_PROXIES: behind a TLS-terminating proxy the client address and scheme come from its
X-Forwarded-* headers; without it those headers are ignored (a client could forge them)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from saas import create_app
from saas.audit.models import AuditEvent
from saas.extensions import db
from saas.tenancy.scoping import platform_scope
from tests.conftest import IsolatedClient
from tests.factories import gen_user
from tests.helpers import csrf_token


@pytest.fixture
def app_behind(app):
    """A second app on the same database and Redis, built with the given TRUSTED_PROXIES."""

    def build(proxies: int):
        built = create_app({**app.config, "TRUSTED_PROXIES": proxies})
        built.test_client_class = IsolatedClient
        return built

    return build


def _fail_login(client, email: str, forwarded_for: str) -> int:
    headers = {"X-Forwarded-For": forwarded_for}
    token = csrf_token(client)
    data = {"email": email, "password": "wrong password", "csrf_token": token}
    return client.post("/auth/login", data=data, headers=headers).status_code


def _exhaust_address(app, client, forwarded_for: str) -> None:
    for n in range(app.config["LOGIN_ATTEMPTS_PER_ADDRESS"]):
        assert _fail_login(client, f"someone{n}@example.jp", forwarded_for) == 401


def test_behind_one_proxy_the_throttle_counts_the_forwarded_client_address(app_behind):
    proxied = app_behind(1)
    user = gen_user("viewer")
    client = proxied.test_client()
    _exhaust_address(proxied, client, "203.0.113.7")
    assert _fail_login(client, "another@example.jp", "203.0.113.7") == 429  # that client is paused
    assert _fail_login(client, user.email, "198.51.100.9") == 401  # another client behind the proxy is not
    with platform_scope("test: audit addresses"):
        addresses = set(db.session.scalars(sa.select(AuditEvent.ip).where(AuditEvent.action == "login.failure")))
    assert addresses == {"203.0.113.7", "198.51.100.9"}  # the audit log names the clients, not the proxy


def test_without_trusted_proxies_forwarded_addresses_are_ignored(app_behind):
    direct = app_behind(0)
    client = direct.test_client()
    _exhaust_address(direct, client, "203.0.113.7")
    # A forged X-Forwarded-For does not escape the throttle: the real peer address is counted.
    assert _fail_login(client, "another@example.jp", "198.51.100.9") == 429


def test_hsts_when_the_proxy_says_the_client_used_https(app_behind):
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    proxied = app_behind(1).test_client().get("/auth/login", headers=headers).headers
    direct = app_behind(0).test_client().get("/auth/login", headers=headers).headers
    assert proxied["Strict-Transport-Security"].startswith("max-age=")
    assert "Strict-Transport-Security" not in direct
