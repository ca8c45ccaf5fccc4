"""Connecting a clinic's LINE channel from the settings page, against the sandbox."""

from __future__ import annotations

from saas.extensions import db
from saas.tenancy.models import Clinic
from tests.conftest import csrf_token
from tests.factories import gen_clinic, gen_user
from tests.helpers import login

SECRET = "0123456789abcdef0123456789abcdef"
TOKEN = "onboarding-token-" + "x" * 40


def _admin_of_new_clinic(client):
    clinic = gen_clinic(name="つなぐ皮膚科")
    user = gen_user("admin", clinic=clinic)
    login(client, user)
    return clinic


def _connect(client, clinic, secret=SECRET, token=TOKEN):
    form = {"channel_id": "1650000001", "channel_secret": secret, "access_token": token}
    return client.post(f"/c/{clinic.slug}/settings/line", data={**form, "csrf_token": csrf_token(client)})


def _reload(clinic) -> Clinic:
    db.session.expire_all()
    return db.session.get(Clinic, clinic.id)


def test_a_good_token_connects_the_channel_and_sets_the_webhook(client, sandbox, live_server):
    channel = sandbox.add_channel("1650000001", SECRET, TOKEN)
    clinic = _admin_of_new_clinic(client)
    answer = _connect(client, clinic)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    assert "Webhookの接続テストに成功しました" in page and 'data-state="connected"' in page
    stored = _reload(clinic)
    assert stored.line_connected and stored.line_bot_user_id == channel["botUserId"]
    assert stored.line_basic_id == channel.get("basicId")
    webhook = f"{live_server.url}/webhooks/line/{stored.webhook_key}"
    assert webhook in page
    paths = [(r["method"], r["path"]) for r in sandbox.requests("1650000001")]
    assert ("PUT", "/v2/bot/channel/webhook/endpoint") in paths and ("POST", "/v2/bot/channel/webhook/test") in paths


def test_the_secret_and_token_are_stored_encrypted(client, sandbox, live_server):
    sandbox.add_channel("1650000001", SECRET, TOKEN)
    clinic = _admin_of_new_clinic(client)
    _connect(client, clinic)
    raw = db.session.execute(
        db.text("SELECT line_channel_secret, line_access_token FROM clinic WHERE id = :id"), {"id": clinic.id}
    ).one()
    assert SECRET not in raw[0] and TOKEN not in raw[1]


def test_a_bad_token_is_refused_with_a_clear_error_and_nothing_stored(client, sandbox, live_server):
    sandbox.add_channel("1650000001", SECRET, TOKEN)
    clinic = _admin_of_new_clinic(client)
    answer = _connect(client, clinic, token="wrong-token-" + "y" * 30)
    assert answer.status_code == 400
    assert "チャネルアクセストークンが無効です" in answer.get_data(as_text=True)
    assert not _reload(clinic).line_connected


def test_a_wrong_secret_is_reported_by_the_webhook_test(client, sandbox, live_server):
    sandbox.add_channel("1650000001", SECRET, TOKEN)
    clinic = _admin_of_new_clinic(client)
    answer = _connect(client, clinic, secret="ffffffffffffffffffffffffffffffff")
    assert "チャネルシークレットが正しいか確認してください" in answer.get_data(as_text=True)


def test_staff_without_the_settings_permission_cannot_open_the_page(client):
    clinic = gen_clinic()
    login(client, gen_user("sender", clinic=clinic))
    assert client.get(f"/c/{clinic.slug}/settings/line").status_code == 403
