"""Fixtures for the sandbox's own tests: a registered channel, SDK clients, a webhook receiver."""

from __future__ import annotations

import json
import threading
import uuid

import pytest
from flask import Flask, request
from werkzeug.serving import make_server

from saas.sandbox.contract import validate_response

SECRET = "0123456789abcdef0123456789abcdef"


class WebhookReceiver:
    """A bot server stand-in over real HTTP that records every webhook request."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.answer_status = 200
        app = Flask("receiver")

        @app.post("/webhook")
        def webhook():
            self.received.append(
                {"headers": dict(request.headers), "raw": request.get_data(), "body": json.loads(request.get_data())}
            )
            return "", self.answer_status

        self._server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}/webhook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()


@pytest.fixture(scope="session")
def receiver_server():
    server = WebhookReceiver()
    yield server
    server.stop()


@pytest.fixture
def receiver(receiver_server):
    """The webhook receiver, emptied and answering 200."""
    receiver_server.received.clear()
    receiver_server.answer_status = 200
    return receiver_server


@pytest.fixture
def channel(sandbox, receiver):
    """A free-plan channel whose webhooks go to the receiver; its token and ids."""
    token = "token-" + uuid.uuid4().hex
    info = sandbox.add_channel("2000000001", SECRET, token, webhook_url=receiver.url, display_name="さくら内科")
    return {"id": "2000000001", "token": token, "secret": SECRET, **info}


@pytest.fixture
def api_client(sandbox, channel):
    """A real line-bot-sdk ApiClient pointed at the sandbox with the channel's token."""
    from linebot.v3.messaging import ApiClient, Configuration

    with ApiClient(Configuration(host=sandbox.url, access_token=channel["token"])) as client:
        yield client
    # Every answer the sandbox gave in the test must be one LINE's OpenAPI allows.
    for entry in sandbox.requests(channel["id"]):
        if entry["response"] is not None or entry["status"] >= 400:
            validate_response(entry["method"], entry["path"], entry["status"], entry["response"])


@pytest.fixture
def messaging(api_client):
    """``MessagingApi`` on the sandbox."""
    from linebot.v3.messaging import MessagingApi

    return MessagingApi(api_client)


@pytest.fixture
def friend(sandbox, channel):
    """A virtual patient who has added the channel as a friend."""
    user_id = sandbox.add_patient(channel["id"], "山田 花子", picture_url="https://example.com/p.png")
    sandbox.follow(channel["id"], user_id)
    return user_id
