"""Fixtures that run the Stripe stand-in over real HTTP (owned by the billing capability)."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import make_server

from saas.stripe_sandbox import create_stripe_sandbox_app
from saas.stripe_sandbox.control import StripeSandboxControl

WEBHOOK_SECRET = "whsec_test_" + "c" * 32
BILLING_CONFIG = ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE")


class StripeSandboxServer:
    """The stand-in served on a free loopback port in a daemon thread."""

    def __init__(self) -> None:
        self.app = create_stripe_sandbox_app()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()


@pytest.fixture(scope="session")
def stripe_server():
    server = StripeSandboxServer()
    yield server
    server.stop()


@pytest.fixture
def stripe_sandbox(stripe_server, app, live_server):
    """A reset stand-in whose webhooks reach the live app; the app's Stripe settings point at it
    for this test only (the rest of the suite runs with billing off)."""
    before = {key: app.config.get(key) for key in BILLING_CONFIG}
    app.config.update(
        STRIPE_SECRET_KEY="sk_test_tsunagu", STRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET, STRIPE_API_BASE=stripe_server.url
    )
    control = StripeSandboxControl(stripe_server.url)
    control.reset()
    control.set_webhook(f"{live_server.url}/webhooks/stripe", WEBHOOK_SECRET)
    control.secret = WEBHOOK_SECRET
    yield control
    app.config.update(before)
