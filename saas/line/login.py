"""LINE Login (OpenID Connect) for patients: authorization URL, code exchange, id_token checks.

The flow runs through Authlib's OAuth2 client (PKCE S256). ID tokens are verified here, the
same code in production and against the sandbox: LINE signs web-login tokens with **HS256
and the channel secret** (no ``kid``) and LIFF/SDK tokens with **ES256** keys from its JWKS,
while its discovery document only advertises ES256 — so Authlib's ``parse_id_token`` would
refuse every web-login token. We decode with joserfc (Authlib's JOSE library) and check
issuer, audience (= LINE Login channel id), nonce and expiry ourselves.
"""

from __future__ import annotations

import hmac
import threading
import time
from dataclasses import dataclass

import requests
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, OctKey

from saas.line.errors import LineRequestRejected, LineServerError

HTTP_TIMEOUT = 10
LEEWAY_SECONDS = 30  # clock skew tolerated on exp/iat
_DISCOVERY_TTL = 300.0
_discovery_cache: dict[str, tuple[float, dict]] = {}
_cache_lock = threading.Lock()


class IdTokenInvalid(Exception):
    """The id_token must not be trusted; ``reason`` says which check failed."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class LoginChannel:
    """A clinic's LINE Login channel (not the Messaging API channel)."""

    channel_id: str
    channel_secret: str


@dataclass(frozen=True)
class LineIdentity:
    user_id: str
    name: str
    picture: str | None
    claims: dict


def _base() -> str:
    return current_app.config["LINE_LOGIN_BASE"].rstrip("/")


def discovery() -> dict:
    """LINE's OpenID configuration (cached for a few minutes per base URL)."""
    url = _base() + "/.well-known/openid-configuration"
    with _cache_lock:
        cached = _discovery_cache.get(url)
        if cached and cached[0] > time.monotonic():
            return cached[1]
    try:
        answer = requests.get(url, timeout=HTTP_TIMEOUT)
        answer.raise_for_status()
    except requests.RequestException as exc:
        raise LineServerError(f"LINE Login discovery failed: {exc}") from exc
    document = answer.json()
    with _cache_lock:
        _discovery_cache[url] = (time.monotonic() + _DISCOVERY_TTL, document)
    return document


def _session(channel: LoginChannel, redirect_uri: str) -> OAuth2Session:
    return OAuth2Session(
        channel.channel_id,
        channel.channel_secret,
        scope="openid profile",
        redirect_uri=redirect_uri,
        token_endpoint_auth_method="client_secret_post",
        code_challenge_method="S256",
    )


def authorization_url(channel: LoginChannel, redirect_uri: str, *, state: str, nonce: str, code_verifier: str) -> str:
    """Where to send the patient to sign in (state, nonce and a PKCE challenge included)."""
    url, _ = _session(channel, redirect_uri).create_authorization_url(
        discovery()["authorization_endpoint"], state=state, nonce=nonce, code_verifier=code_verifier
    )
    return url


def exchange_code(channel: LoginChannel, redirect_uri: str, code: str, code_verifier: str) -> dict:
    """Trade the authorization code for tokens (``id_token``, ``access_token``)."""
    try:
        return dict(
            _session(channel, redirect_uri).fetch_token(
                discovery()["token_endpoint"], code=code, code_verifier=code_verifier, timeout=HTTP_TIMEOUT
            )
        )
    except requests.RequestException as exc:
        raise LineServerError(f"LINE Login token endpoint unreachable: {exc}") from exc
    except Exception as exc:  # Authlib raises OAuthError for error answers
        raise LineRequestRejected(f"LINE Login refused the code: {exc}") from exc


def _jwks() -> KeySet:
    try:
        answer = requests.get(discovery()["jwks_uri"], timeout=HTTP_TIMEOUT)
        answer.raise_for_status()
    except requests.RequestException as exc:
        raise LineServerError(f"LINE Login JWKS unreachable: {exc}") from exc
    return KeySet.import_key_set(answer.json())


def _decode(id_token: str, channel: LoginChannel):
    try:
        header = jws.extract_compact(id_token.encode()).protected
    except (JoseError, ValueError) as exc:
        raise IdTokenInvalid("malformed") from exc
    algorithm = header.get("alg")
    if algorithm == "HS256":  # web login: the channel secret is the key
        key, allowed = OctKey.import_key(channel.channel_secret), ["HS256"]
    elif algorithm == "ES256" and header.get("kid"):  # LIFF / SDK: LINE's published keys
        key, allowed = _jwks(), ["ES256"]
    else:
        raise IdTokenInvalid("algorithm")
    try:
        return jwt.decode(id_token, key, algorithms=allowed)
    except (JoseError, ValueError) as exc:
        raise IdTokenInvalid("signature") from exc


def _audiences(claims: dict) -> list:
    aud = claims.get("aud")
    return aud if isinstance(aud, list) else [aud]


def verify_id_token(id_token: str, channel: LoginChannel, *, nonce: str, now: int | None = None) -> LineIdentity:
    """Check signature, issuer, audience (the Login channel id), nonce and expiry.

    Raises :class:`IdTokenInvalid` naming the failed check.
    """
    claims = _decode(id_token, channel).claims
    if claims.get("iss") != discovery().get("issuer"):
        raise IdTokenInvalid("issuer")
    if channel.channel_id not in _audiences(claims):
        raise IdTokenInvalid("audience")
    if not nonce or not hmac.compare_digest(str(claims.get("nonce") or ""), nonce):
        raise IdTokenInvalid("nonce")
    registry = jwt.JWTClaimsRegistry(now=now, leeway=LEEWAY_SECONDS, exp={"essential": True})
    try:
        registry.validate(claims)
    except (JoseError, ValueError) as exc:
        raise IdTokenInvalid("expiry") from exc
    if not claims.get("sub"):
        raise IdTokenInvalid("subject")
    return LineIdentity(
        user_id=claims["sub"], name=claims.get("name") or "", picture=claims.get("picture"), claims=claims
    )
