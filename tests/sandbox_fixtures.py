"""Fixtures that run the LINE sandbox over real HTTP (owned by the sandbox capability)."""

from __future__ import annotations

import threading

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from saas.sandbox import create_sandbox_app
from saas.sandbox.control import SandboxControl


class _KeepAlive(WSGIRequestHandler):
    """HTTP/1.1 with persistent connections, as LINE's API answers (a new connection per call
    would make the stand-in, not the product, the limit of a send benchmark)."""

    protocol_version = "HTTP/1.1"


class SandboxServer:
    """The sandbox app served on a free loopback port in a daemon thread."""

    def __init__(self) -> None:
        self.app = create_sandbox_app()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_KeepAlive)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()


@pytest.fixture(scope="session")
def sandbox_server():
    """The running sandbox server (session)."""
    server = SandboxServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def line_sandbox(sandbox_server, app):
    """A ``SandboxControl`` for the sandbox; the product app's LINE hosts point at it."""
    app.config["LINE_API_BASE"] = sandbox_server.url
    app.config["LINE_DATA_API_BASE"] = sandbox_server.url
    app.config["LINE_LOGIN_BASE"] = sandbox_server.url
    control = SandboxControl(sandbox_server.url)
    control.url = sandbox_server.url
    return control


@pytest.fixture
def sandbox(line_sandbox):
    """The same ``SandboxControl``, with every sandbox channel and patient forgotten first."""
    line_sandbox.reset()
    return line_sandbox
