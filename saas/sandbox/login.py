"""LINE Login (OpenID Connect) as the sandbox plays it: discovery, authorize with a consent
page for a virtual patient, token (PKCE S256), JWKS, verify and userinfo.

ID tokens are signed as LINE signs them: web login HS256 with the channel secret and no
``kid``; LIFF tokens (minted through the control API) ES256 with an EC P-256 key and ``kid``.
Control: ``POST /_sandbox/login-channels`` {channelId, channelSecret, botChannelId?,
callbackUrls?, autoApproveUserId?}, ``PUT /_sandbox/login-channels/<id>`` and
``POST /_sandbox/login-channels/<id>/liff-id-token`` {userId, nonce?}. ``sandbox_user=<userId>``
on the authorize URL (or ``autoApproveUserId``) skips the consent page.

``bot_prompt=normal|aggressive`` (a login channel linked to its bot with ``botChannelId``) offers
to add the bot as a friend, as LINE does: the consent page has an add-friend checkbox (with
``sandbox_user``, ``sandbox_add_friend=0`` declines). Adding delivers the bot's follow webhook
before the redirect, and the redirect carries ``friendship_status_changed=true|false``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, jsonify, redirect, render_template_string, request
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, OctKey

from .api import state
from .state import now_ms
from .webhooks import follow_event, send

bp = Blueprint("sandbox_login", __name__)
CODE_TTL_S = 600
TOKEN_TTL_S = 30 * 24 * 3600
ID_TOKEN_TTL_S = 3600


@dataclass
class LoginChannel:
    channel_id: str
    secret: str
    bot_channel_id: str | None = None
    callback_urls: list[str] = field(default_factory=list)
    auto_approve_user_id: str | None = None


class LoginState:
    """Login channels, pending codes and access tokens (own lock; cleared with the sandbox)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.key = ECKey.generate_key("P-256", parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "ES256"})
        self.clear()

    def clear(self) -> None:
        self.channels: dict[str, LoginChannel] = {}
        self.codes: dict[str, dict] = {}
        self.access_tokens: dict[str, dict] = {}


_create_lock = threading.Lock()


def login_state() -> LoginState:
    """The login state of the running sandbox app (created on first use)."""
    found = current_app.extensions.get("line_sandbox_login")
    if found is None:
        with _create_lock:
            found = current_app.extensions.setdefault("line_sandbox_login", LoginState())
    return found


@bp.before_app_request
def _forget_on_reset():
    if request.path == "/_sandbox/reset" and request.method == "POST":
        with login_state().lock:
            login_state().clear()


def issuer() -> str:
    """The sandbox's issuer: its own base URL (LINE's is https://access.line.me)."""
    return request.host_url.rstrip("/")


def _oauth_error(error: str, description: str, status: int = 400):
    return jsonify({"error": error, "error_description": description}), status


@bp.get("/.well-known/openid-configuration")
def discovery():
    """The OIDC discovery document, shaped like LINE's."""
    base = issuer()
    return jsonify(
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth2/v2.1/authorize",
            "token_endpoint": f"{base}/oauth2/v2.1/token",
            "revocation_endpoint": f"{base}/oauth2/v2.1/revoke",
            "userinfo_endpoint": f"{base}/oauth2/v2.1/userinfo",
            "scopes_supported": ["openid", "profile", "email"],
            "jwks_uri": f"{base}/oauth2/v2.1/certs",
            "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "code_challenge_methods_supported": ["S256"],
        }
    )


@bp.get("/oauth2/v2.1/certs")
def certs():
    """The public ES256 key LIFF id_tokens are signed with."""
    return jsonify({"keys": [login_state().key.as_dict(private=False)]})


def _patients(channel: LoginChannel) -> list[dict]:
    with state().lock:
        bots = [state().channels.get(channel.bot_channel_id)] if channel.bot_channel_id else state().channels.values()
        found = {}
        for bot in filter(None, bots):
            for patient in bot.patients.values():
                found.setdefault(patient.user_id, {"userId": patient.user_id, "displayName": patient.display_name})
        return list(found.values())


def _patient(user_id: str) -> dict | None:
    with state().lock:
        for bot in state().channels.values():
            patient = bot.patients.get(user_id)
            if patient:
                return {
                    "userId": patient.user_id,
                    "displayName": patient.display_name,
                    "pictureUrl": patient.picture_url,
                }
    return None


def _redirect_allowed(channel: LoginChannel, redirect_uri: str) -> bool:
    return bool(redirect_uri) and (not channel.callback_urls or redirect_uri in channel.callback_urls)


def _back(redirect_uri: str, **params) -> str:
    joiner = "&" if "?" in redirect_uri else "?"
    return redirect_uri + joiner + urlencode({k: v for k, v in params.items() if v is not None})


CONSENT_PAGE = """<!doctype html><html lang="ja"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1"><title>LINE Login (sandbox)</title>
<style>body{font-family:sans-serif;max-width:420px;margin:2rem auto;padding:0 1rem;color:#111}
h1{color:#06c755;font-size:1.3rem}label{display:block;padding:.6rem;border:1px solid #ddd;border-radius:8px;margin:.4rem 0}
button{width:100%;padding:.8rem;border:0;border-radius:8px;margin-top:.6rem;font-size:1rem}
.ok{background:#06c755;color:#fff}.no{background:#eee}</style></head><body>
<h1>LINE ログイン（サンドボックス）</h1>
<p>「{{ channel.channel_id }}」があなたのプロフィール情報へのアクセスを求めています。ログインする患者さんを選んでください。</p>
<form method="post">
{% for key, value in params.items() %}<input type="hidden" name="{{ key }}" value="{{ value }}">{% endfor %}
{% for patient in patients %}<label><input type="radio" name="user_id" value="{{ patient.userId }}" {% if loop.first %}checked{% endif %}> {{ patient.displayName }}</label>
{% else %}<p>仮想の患者さんがいません。</p>{% endfor %}
{% if params.bot_prompt %}<label><input type="checkbox" name="add_friend" value="1" checked> 公式アカウントを友だち追加</label>{% endif %}
<button class="ok" name="decision" value="allow">許可する</button>
<button class="no" name="decision" value="deny">キャンセル</button>
</form></body></html>"""

AUTHORIZE_PARAMS = ("response_type", "client_id", "redirect_uri", "state", "scope", "nonce", "bot_prompt")
PKCE_PARAMS = ("code_challenge", "code_challenge_method")


@bp.route("/oauth2/v2.1/authorize", methods=["GET", "POST"])
def authorize():
    """Authorization endpoint: the consent page, then a redirect back with ``code`` and ``state``."""
    params = {k: v for k in AUTHORIZE_PARAMS + PKCE_PARAMS if (v := request.values.get(k))}
    with login_state().lock:
        channel = login_state().channels.get(params.get("client_id", ""))
    if channel is None:
        abort(400, "invalid client_id")
    redirect_uri = params.get("redirect_uri", "")
    if not _redirect_allowed(channel, redirect_uri) or params.get("response_type") != "code":
        abort(400, "invalid redirect_uri or response_type")
    if params.get("code_challenge") and params.get("code_challenge_method") != "S256":
        return redirect(_back(redirect_uri, error="invalid_request", state=params.get("state")))
    user_id = request.args.get("sandbox_user") or channel.auto_approve_user_id
    adds_friend = request.args.get("sandbox_add_friend", "1") != "0"
    if request.method == "POST":
        if request.form.get("decision") != "allow":
            return redirect(_back(redirect_uri, error="access_denied", state=params.get("state")))
        user_id, adds_friend = request.form.get("user_id"), request.form.get("add_friend") == "1"
    if not user_id:
        return render_template_string(CONSENT_PAGE, channel=channel, params=params, patients=_patients(channel))
    if _patient(user_id) is None:
        abort(400, "unknown user")
    code = secrets.token_urlsafe(16)
    with login_state().lock:
        login_state().codes[code] = {**params, "user_id": user_id, "expires": time.time() + CODE_TTL_S}
    changed = None
    if params.get("bot_prompt") in ("normal", "aggressive") and channel.bot_channel_id:
        changed = "true" if adds_friend and _add_friend(channel, user_id) else "false"
    return redirect(_back(redirect_uri, code=code, state=params.get("state"), friendship_status_changed=changed))


def _add_friend(channel: LoginChannel, user_id: str) -> bool:
    """The patient adds the linked bot on the consent screen; True when the friendship changed."""
    with state().lock:
        bot = state().channels.get(channel.bot_channel_id or "")
        patient = bot.patients.get(user_id) if bot else None
        if patient is None or (patient.following and not patient.blocked):
            return False
        unblocked = patient.blocked
        patient.following, patient.blocked = True, False
        patient.followed_at = patient.followed_at or now_ms()
        event = follow_event(bot, patient, unblocked=unblocked)
    send(state(), bot, [event])
    return True


def _pkce_ok(grant: dict, verifier: str | None) -> bool:
    challenge = grant.get("code_challenge")
    if not challenge:
        return True
    if not verifier:
        return False
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return secrets.compare_digest(digest, challenge)


def id_token_claims(channel_id: str, user_id: str, nonce: str | None, amr: list[str]) -> dict:
    """The payload LINE puts in an id_token."""
    now = int(time.time())
    patient = _patient(user_id) or {}
    claims = {
        "iss": issuer(),
        "sub": user_id,
        "aud": channel_id,
        "exp": now + ID_TOKEN_TTL_S,
        "iat": now,
        "auth_time": now,
        "amr": amr,
        "name": patient.get("displayName", ""),
    }
    if patient.get("pictureUrl"):
        claims["picture"] = patient["pictureUrl"]
    if nonce:
        claims["nonce"] = nonce
    return claims


def web_id_token(channel: LoginChannel, claims: dict) -> str:
    """HS256 with the channel secret, no ``kid`` (LINE's web login)."""
    return jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, OctKey.import_key(channel.secret))


def liff_id_token(claims: dict) -> str:
    """ES256 with the sandbox's EC key and its ``kid`` (LIFF, LINE SDK)."""
    key = login_state().key
    return jwt.encode({"alg": "ES256", "typ": "JWT", "kid": key.kid}, claims, key)


@bp.post("/oauth2/v2.1/token")
def token():
    """Exchange an authorization code (once, before it expires) for an id_token and access token."""
    form = request.form
    if form.get("grant_type") != "authorization_code":
        return _oauth_error("unsupported_grant_type", "grant_type must be authorization_code")
    with login_state().lock:
        channel = login_state().channels.get(form.get("client_id", ""))
        grant = login_state().codes.pop(form.get("code", ""), None)
    if channel is None or not secrets.compare_digest(channel.secret, form.get("client_secret", "")):
        return _oauth_error("invalid_client", "invalid client_id or client_secret", 401)
    if grant is None or grant["expires"] < time.time() or grant.get("client_id") != channel.channel_id:
        return _oauth_error("invalid_grant", "invalid authorization code")
    if grant.get("redirect_uri") != form.get("redirect_uri"):
        return _oauth_error("invalid_grant", "redirect_uri does not match")
    if not _pkce_ok(grant, form.get("code_verifier")):
        return _oauth_error("invalid_grant", "invalid code_verifier")
    access_token = secrets.token_urlsafe(32)
    with login_state().lock:
        login_state().access_tokens[access_token] = {
            "client_id": channel.channel_id,
            "user_id": grant["user_id"],
            "scope": grant.get("scope", ""),
            "expires": time.time() + TOKEN_TTL_S,
        }
    claims = id_token_claims(channel.channel_id, grant["user_id"], grant.get("nonce"), ["linesso"])
    return jsonify(
        {
            "access_token": access_token,
            "expires_in": TOKEN_TTL_S,
            "id_token": web_id_token(channel, claims),
            "refresh_token": secrets.token_urlsafe(16),
            "scope": grant.get("scope", ""),
            "token_type": "Bearer",
        }
    )


@bp.post("/oauth2/v2.1/verify")
def verify_id_token():
    """LINE's server-side id_token check: the decoded claims, or 400."""
    with login_state().lock:
        channel = login_state().channels.get(request.form.get("client_id", ""))
    if channel is None:
        return _oauth_error("invalid_request", "invalid client_id")
    try:
        claims = jwt.decode(request.form.get("id_token", ""), _verification_key(channel)).claims
        jwt.JWTClaimsRegistry(exp={"essential": True}, aud={"essential": True, "value": channel.channel_id}).validate(
            claims
        )
    except (JoseError, ValueError):
        return _oauth_error("invalid_request", "Invalid IdToken.")
    for name in ("nonce", "user_id"):
        expected = request.form.get(name)
        if expected and claims.get("sub" if name == "user_id" else name) != expected:
            return _oauth_error("invalid_request", f"Invalid IdToken {name}.")
    return jsonify(claims)


def _verification_key(channel: LoginChannel):
    token_value = request.form.get("id_token", "")
    header = token_value.split(".")[0] if token_value else ""
    padded = header + "=" * (-len(header) % 4)
    try:
        is_es256 = b'"ES256"' in base64.urlsafe_b64decode(padded)
    except ValueError:
        is_es256 = False
    return login_state().key if is_es256 else OctKey.import_key(channel.secret)


def _access(token_value: str) -> dict | None:
    with login_state().lock:
        entry = login_state().access_tokens.get(token_value)
    return entry if entry and entry["expires"] > time.time() else None


@bp.get("/oauth2/v2.1/verify")
def verify_access_token():
    """Access-token check: scope, client_id, expires_in."""
    entry = _access(request.args.get("access_token", ""))
    if entry is None:
        return _oauth_error("invalid_request", "access token expired")
    expires_in = int(entry["expires"] - time.time())
    return jsonify({"scope": entry["scope"], "client_id": entry["client_id"], "expires_in": expires_in})


@bp.get("/oauth2/v2.1/userinfo")
def userinfo():
    """The signed-in user's sub, name and picture (bearer access token)."""
    header = request.headers.get("Authorization", "")
    entry = _access(header[7:].strip() if header.lower().startswith("bearer ") else "")
    if entry is None:
        return _oauth_error("invalid_token", "invalid access token", 401)
    patient = _patient(entry["user_id"]) or {}
    return jsonify(
        {"sub": entry["user_id"], "name": patient.get("displayName", ""), "picture": patient.get("pictureUrl")}
    )


@bp.post("/_sandbox/login-channels")
def add_login_channel():
    """Register a LINE Login channel (optionally linked to a Messaging API channel)."""
    body = request.get_json(silent=True) or {}
    if not body.get("channelId") or not body.get("channelSecret"):
        abort(400, "channelId and channelSecret are required")
    channel = LoginChannel(
        channel_id=str(body["channelId"]),
        secret=str(body["channelSecret"]),
        bot_channel_id=body.get("botChannelId"),
        callback_urls=list(body.get("callbackUrls") or []),
        auto_approve_user_id=body.get("autoApproveUserId"),
    )
    with login_state().lock:
        login_state().channels[channel.channel_id] = channel
    return jsonify({"channelId": channel.channel_id}), 201


@bp.put("/_sandbox/login-channels/<channel_id>")
def configure_login_channel(channel_id: str):
    """Change ``autoApproveUserId``, ``callbackUrls`` or ``botChannelId``."""
    body = request.get_json(silent=True) or {}
    with login_state().lock:
        channel = login_state().channels.get(channel_id)
        if channel is None:
            abort(404, f"no login channel {channel_id}")
        if "autoApproveUserId" in body:
            channel.auto_approve_user_id = body["autoApproveUserId"]
        if "callbackUrls" in body:
            channel.callback_urls = list(body["callbackUrls"] or [])
        if "botChannelId" in body:
            channel.bot_channel_id = body["botChannelId"]
    return jsonify({"channelId": channel_id})


@bp.post("/_sandbox/login-channels/<channel_id>/liff-id-token")
def mint_liff_id_token(channel_id: str):
    """An ES256 id_token as ``liff.getIDToken()`` would return for the user."""
    body = request.get_json(silent=True) or {}
    with login_state().lock:
        channel = login_state().channels.get(channel_id)
    if channel is None or not body.get("userId"):
        abort(404, "no such login channel or user")
    return jsonify({"idToken": liff_id_token(id_token_claims(channel_id, body["userId"], body.get("nonce"), ["pwd"]))})
