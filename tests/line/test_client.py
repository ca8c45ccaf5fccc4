"""The LINE facade over the real SDK against the sandbox: answers and LINE's errors, translated."""

from __future__ import annotations

import uuid

import pytest

from saas.line import client
from saas.line.errors import (
    LineMonthlyLimitReached,
    LineRateLimited,
    LineRequestRejected,
    LineRetryKeyAccepted,
    LineServerError,
)
from tests.factories import gen_clinic

SECRET, TOKEN = "c" * 32, "client-test-token-" + "z" * 30
HELLO = [{"type": "text", "text": "こんにちは"}]


@pytest.fixture
def clinic(sandbox):
    sandbox.add_channel("1660000001", SECRET, TOKEN)
    return gen_clinic(line_channel_id="1660000001", line_channel_secret=SECRET, line_access_token=TOKEN)


def test_push_delivers_to_the_patient_and_returns_the_request_id(sandbox, clinic):
    patient = sandbox.add_patient("1660000001", "患者 一")
    sandbox.follow("1660000001", patient, deliver=False)
    sent = client.push(clinic, patient, HELLO, retry_key=str(uuid.uuid4()))
    assert sent.request_id
    assert [m["message"]["text"] for m in sandbox.inbox("1660000001", patient)] == ["こんにちは"]


def test_the_same_retry_key_again_is_reported_as_already_accepted(sandbox, clinic):
    patient = sandbox.add_patient("1660000001", "患者 二")
    sandbox.follow("1660000001", patient, deliver=False)
    key = str(uuid.uuid4())
    first = client.push(clinic, patient, HELLO, retry_key=key)
    with pytest.raises(LineRetryKeyAccepted) as raised:
        client.push(clinic, patient, HELLO, retry_key=key)
    assert raised.value.status == 409 and raised.value.accepted_request_id == first.request_id
    assert len(sandbox.inbox("1660000001", patient)) == 1


def test_multicast_reaches_every_recipient(sandbox, clinic):
    patients = [sandbox.add_patient("1660000001", f"患者 {i}") for i in range(3)]
    for patient in patients:
        sandbox.follow("1660000001", patient, deliver=False)
    client.multicast(clinic, patients, HELLO, retry_key=str(uuid.uuid4()))
    assert all(sandbox.inbox("1660000001", p)[-1]["via"] == "multicast" for p in patients)


def test_rate_limit_and_server_errors_are_retryable(sandbox, clinic):
    sandbox.configure("1660000001", fail_next=[429, 500])
    with pytest.raises(LineRateLimited) as limited:
        client.push(clinic, "U" + "a" * 32, HELLO, retry_key=str(uuid.uuid4()))
    with pytest.raises(LineServerError) as failed:
        client.push(clinic, "U" + "a" * 32, HELLO, retry_key=str(uuid.uuid4()))
    assert limited.value.retryable and failed.value.retryable


def test_the_monthly_limit_is_told_apart_from_the_rate_limit(sandbox, clinic):
    patient = sandbox.add_patient("1660000001", "患者 三")
    sandbox.follow("1660000001", patient, deliver=False)
    sandbox.configure("1660000001", monthly_limit=0)
    with pytest.raises(LineMonthlyLimitReached) as raised:
        client.push(clinic, patient, HELLO, retry_key=str(uuid.uuid4()))
    assert not raised.value.retryable


def test_an_invalid_request_is_rejected_with_lines_message_and_details(sandbox, clinic):
    too_long = [{"type": "text", "text": "あ" * 5001}]
    with pytest.raises(LineRequestRejected) as raised:
        client.push(clinic, "U" + "b" * 32, too_long, retry_key=str(uuid.uuid4()))
    assert raised.value.status == 400 and raised.value.message
    assert raised.value.details


def test_a_request_the_sdk_refuses_before_sending_is_rejected_too(sandbox, clinic):
    with pytest.raises(LineRequestRejected):
        client.push(clinic, "U" + "b" * 32, HELLO * 6, retry_key=str(uuid.uuid4()))
    assert sandbox.requests("1660000001") == []


def test_a_bad_token_is_rejected(sandbox):
    with pytest.raises(LineRequestRejected) as raised:
        client.bot_info(client.Channel(line_access_token="nope"))
    assert raised.value.status == 401


def test_profile_and_bot_info_come_from_the_channel(sandbox, clinic):
    patient = sandbox.add_patient("1660000001", "患者 四", language="ja")
    sandbox.follow("1660000001", patient, deliver=False)
    profile = client.get_profile(clinic, patient)
    assert (profile.user_id, profile.display_name, profile.language) == (patient, "患者 四", "ja")
    assert client.bot_info(clinic).user_id.startswith("U")


def test_an_unreachable_line_is_a_server_error(app, clinic):
    base = app.config["LINE_API_BASE"]
    app.config["LINE_API_BASE"] = "http://127.0.0.1:9"
    try:
        with pytest.raises(LineServerError):
            client.bot_info(clinic)
    finally:
        app.config["LINE_API_BASE"] = base
