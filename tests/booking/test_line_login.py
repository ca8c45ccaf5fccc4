"""LINE Login through the sandbox: id_tokens are checked for signature, audience, nonce, expiry."""

from __future__ import annotations

import time

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from saas.line import login as line_login

CHANNEL = line_login.LoginChannel("1650000001", "0123456789abcdef0123456789abcdef")


@pytest.fixture
def login_channel(sandbox):
    body = {"channelId": CHANNEL.channel_id, "channelSecret": CHANNEL.channel_secret}
    requests.post(f"{sandbox.url}/_sandbox/login-channels", json=body, timeout=10).raise_for_status()
    return sandbox


def _token(sandbox, *, secret=CHANNEL.channel_secret, exp_in=3600, **claims) -> str:
    now = int(time.time())
    payload = {
        "iss": sandbox.url,
        "sub": "U" + "a" * 32,
        "aud": CHANNEL.channel_id,
        "nonce": "n-1",
        "iat": now,
        "exp": now + exp_in,
        "name": "患者",
    }
    payload.update(claims)
    return jwt.encode({"alg": "HS256", "typ": "JWT"}, payload, OctKey.import_key(secret))


def test_a_web_login_id_token_signed_with_the_channel_secret_is_accepted(login_channel):
    identity = line_login.verify_id_token(_token(login_channel), CHANNEL, nonce="n-1")
    assert identity.user_id == "U" + "a" * 32 and identity.name == "患者"


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"aud": "1650000999"}, "audience"),
        ({"nonce": "replayed"}, "nonce"),
        ({"secret": "f" * 32}, "signature"),
        ({"exp_in": -600}, "expiry"),
        ({"iss": "https://evil.example"}, "issuer"),
    ],
)
def test_an_id_token_with_a_wrong_claim_or_signature_is_refused(login_channel, change, reason):
    with pytest.raises(line_login.IdTokenInvalid) as refused:
        line_login.verify_id_token(_token(login_channel, **change), CHANNEL, nonce="n-1")
    assert refused.value.reason == reason


def test_a_token_with_alg_none_is_refused(login_channel):
    header = "eyJhbGciOiJub25lIn0"  # {"alg":"none"}
    with pytest.raises(line_login.IdTokenInvalid):
        line_login.verify_id_token(header + "." + _token(login_channel).split(".")[1] + ".", CHANNEL, nonce="n-1")


def test_a_liff_id_token_is_verified_with_the_es256_key_from_jwks(login_channel):
    answer = requests.post(
        f"{login_channel.url}/_sandbox/login-channels/{CHANNEL.channel_id}/liff-id-token",
        json={"userId": "U" + "b" * 32, "nonce": "liff-n"},
        timeout=10,
    )
    token = answer.json()["idToken"]
    assert (
        "kid"
        in jwt.decode(
            token,
            ECKey.import_key(requests.get(f"{login_channel.url}/oauth2/v2.1/certs", timeout=10).json()["keys"][0]),
        ).header
    )
    assert line_login.verify_id_token(token, CHANNEL, nonce="liff-n").user_id == "U" + "b" * 32
    forged_key = ECKey.generate_key("P-256")
    forged = jwt.encode({"alg": "ES256", "kid": "other"}, {"sub": "U" + "c" * 32}, forged_key)
    with pytest.raises(line_login.IdTokenInvalid):
        line_login.verify_id_token(forged, CHANNEL, nonce="liff-n")


def test_the_sandbox_verify_endpoint_checks_audience_like_line(login_channel):
    url = f"{login_channel.url}/oauth2/v2.1/verify"
    good = requests.post(url, data={"id_token": _token(login_channel), "client_id": CHANNEL.channel_id}, timeout=10)
    assert good.status_code == 200 and good.json()["sub"] == "U" + "a" * 32
    bad = requests.post(
        url, data={"id_token": _token(login_channel, aud="x"), "client_id": CHANNEL.channel_id}, timeout=10
    )
    assert bad.status_code == 400
