"""Issue 10 items 14 and 15: no open redirect from /language/<code>; patient-supplied picture URLs
rendered only when https:; invitation and reset tokens and webhook keys kept out of access logs."""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import time

import pytest
import requests

from saas.common import utcnow
from saas.config import ROOT
from saas.extensions import db
from saas.friends.models import Friend
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_clinic, gen_user
from tests.helpers import login

SECRET_PATHS = [
    "/invitations/INVITE-TOKEN-abc123",
    "/auth/password/reset/RESET-TOKEN-def456",
    "/webhooks/line/WEBHOOK-KEY-ghi789",
    "/auth/login?next=/invitations/INVITE-TOKEN-abc123",
]
SECRETS = ["INVITE-TOKEN-abc123", "RESET-TOKEN-def456", "WEBHOOK-KEY-ghi789"]


@pytest.mark.parametrize("referer", ["https://evil.example/phish", "//evil.example/", "javascript:alert(1)"])
def test_language_switch_never_redirects_to_another_site(client, referer):
    response = client.get("/language/en", headers={"Referer": referer})
    assert response.status_code == 302 and response.location == "/"


def test_language_switch_returns_to_the_page_on_this_site(client):
    response = client.get("/language/en", headers={"Referer": "http://localhost/auth/login?x=1"})
    assert response.location == "/auth/login?x=1"


def test_login_next_parameter_cannot_leave_the_site(client):
    user = gen_user("sender", clinic=gen_clinic())
    from tests.conftest import csrf_token

    data = {"email": user.email, "password": "correct horse battery staple", "csrf_token": csrf_token(client)}
    response = client.post("/auth/login?next=/\\evil.example/", data=data)
    assert response.location == "/"


@pytest.mark.parametrize("picture", ["http://tracker.example/p.png", "javascript:alert(1)", "data:image/png;base64,AA"])
def test_profile_pictures_are_shown_only_from_https(client, picture):
    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        friend = Friend(
            line_user_id="U" + "a" * 32, display_name="山田", followed_at=utcnow(), attributes={}, picture_url=picture
        )
        db.session.add(friend)
        db.session.commit()
        friend_id = friend.id
    login(client, gen_user("admin", clinic=clinic))
    for path in (f"/c/{clinic.slug}/friends", f"/c/{clinic.slug}/friends/{friend_id}", f"/c/{clinic.slug}/inbox/"):
        page = client.get(path, follow_redirects=True).get_data(as_text=True)
        assert picture not in page and picture.replace("&", "&amp;") not in page


def test_https_profile_pictures_are_shown(client):
    clinic = gen_clinic()
    picture = "https://profile.line-scdn.net/abc"
    with tenant_scope(clinic.id):
        db.session.add(
            Friend(
                line_user_id="U" + "b" * 32,
                display_name="佐藤",
                followed_at=utcnow(),
                attributes={},
                picture_url=picture,
            )
        )
        db.session.commit()
    login(client, gen_user("admin", clinic=clinic))
    assert picture in client.get(f"/c/{clinic.slug}/friends").get_data(as_text=True)


def test_the_development_server_log_omits_tokens_and_keys(live_server, caplog):
    with caplog.at_level(logging.INFO, logger="werkzeug"):
        for path in SECRET_PATHS:
            requests.get(live_server.url + path, timeout=10, allow_redirects=False)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "/invitations/[redacted]" in logged
    assert not any(secret in logged for secret in SECRETS)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(url: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(url, timeout=10)
            return
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {timeout}s")


def test_the_gunicorn_access_log_omits_tokens_and_keys(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update(SANDBOX_ENABLED="1", TSUNAGU_INSTANCE_DIR=str(tmp_path), WEB_ACCESS_LOG="-")  # off by default
    gunicorn = os.path.join(os.path.dirname(sys.executable), "gunicorn")
    command = [
        gunicorn,
        "--config",
        "gunicorn.conf.py",
        "--workers",
        "1",
        "--bind",
        f"127.0.0.1:{port}",
        "saas:create_app()",
    ]
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(base + "/healthz")
        for path in SECRET_PATHS:
            requests.get(base + path, timeout=10, allow_redirects=False, headers={"Referer": base + SECRET_PATHS[0]})
        requests.get(base + "/healthz", timeout=10)  # one worker: the lines above are written by now
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=60)
    assert "/invitations/[redacted]" in output and "/webhooks/line/[redacted]" in output
    assert not any(secret in output for secret in SECRETS)
