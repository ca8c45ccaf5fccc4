"""OpenID Connect single sign-on for staff, per agency (authorization code flow via Authlib).

The provider only proves who the person is: the account must already exist (by invitation)
and belong to the provider's agency, and two-factor rules still apply after SSO.
"""

from __future__ import annotations

import secrets

import requests
import sqlalchemy as sa
from authlib.integrations.requests_client import OAuth2Session
from flask import current_app, session, url_for
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from saas.auth.models import User
from saas.auth.roles import Scope
from saas.extensions import db
from saas.members.models import SsoProvider
from saas.tenancy.models import Clinic, Organization

HTTP_TIMEOUT = 10
SESSION_KEY = "sso_flow"


class SsoFailed(Exception):
    """The sign-in could not be completed; ``reason`` goes to the audit log."""

    def __init__(self, reason: str, email: str = ""):
        super().__init__(reason)
        self.reason = reason
        self.email = email


def provider_for_email(email: str) -> SsoProvider | None:
    """The enabled provider whose domains include the email's domain."""
    domain = email.strip().lower().rpartition("@")[2]
    if not domain:
        return None
    providers = db.session.scalars(sa.select(SsoProvider).where(SsoProvider.enabled.is_(True)))
    return next((p for p in providers if domain in p.domains), None)


def any_enabled() -> bool:
    return db.session.scalar(sa.select(sa.func.count(SsoProvider.id)).where(SsoProvider.enabled.is_(True))) > 0


def _metadata(provider: SsoProvider) -> dict:
    response = requests.get(provider.metadata_url, timeout=HTTP_TIMEOUT)
    response.raise_for_status()
    return response.json()


def _redirect_uri() -> str:
    return current_app.config["PUBLIC_BASE_URL"].rstrip("/") + url_for("members.sso_callback")


def _client(provider: SsoProvider) -> OAuth2Session:
    return OAuth2Session(
        provider.client_id,
        provider.client_secret,
        scope="openid email profile",
        redirect_uri=_redirect_uri(),
        token_endpoint_auth_method="client_secret_post",
    )


def authorization_url(provider: SsoProvider, email: str, next_url: str) -> str:
    """Start the flow: remember state and nonce in the session and return the provider URL."""
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    url, _ = _client(provider).create_authorization_url(
        _metadata(provider)["authorization_endpoint"], state=state, nonce=nonce, login_hint=email
    )
    session[SESSION_KEY] = {"provider": provider.id, "state": state, "nonce": nonce, "next": next_url}
    return url


def _verified_claims(provider: SsoProvider, metadata: dict, id_token: str, nonce: str) -> dict:
    keys = KeySet.import_key_set(requests.get(metadata["jwks_uri"], timeout=HTTP_TIMEOUT).json())
    try:
        token = jwt.decode(id_token, keys, algorithms=["RS256", "ES256"])
        jwt.JWTClaimsRegistry(
            leeway=60,
            iss={"essential": True, "value": metadata["issuer"]},
            aud={"essential": True, "value": provider.client_id},
            nonce={"essential": True, "value": nonce},
            exp={"essential": True},
        ).validate(token.claims)
    except (JoseError, ValueError) as exc:
        raise SsoFailed("sso_invalid_id_token") from exc
    return token.claims


def _belongs_to_agency(user: User, agency_id: int) -> bool:
    for m in user.memberships:
        if m.scope == Scope.AGENCY and m.agency_id == agency_id:
            return True
        if m.scope == Scope.ORGANIZATION and db.session.get(Organization, m.organization_id).agency_id == agency_id:
            return True
        if m.scope == Scope.CLINIC and db.session.get(Clinic, m.clinic_id).organization.agency_id == agency_id:
            return True
    return False


def complete(args: dict) -> tuple[User, SsoProvider, str]:
    """Finish the flow from the callback's query; returns the user, provider and next URL."""
    flow = session.pop(SESSION_KEY, None)
    if not flow or not args.get("state") or not secrets.compare_digest(args["state"], flow["state"]):
        raise SsoFailed("sso_state_mismatch")
    if "error" in args or not args.get("code"):
        raise SsoFailed("sso_denied")
    provider = db.session.get(SsoProvider, flow["provider"])
    if provider is None or not provider.enabled:
        raise SsoFailed("sso_provider_disabled")
    metadata = _metadata(provider)
    try:
        token = _client(provider).fetch_token(metadata["token_endpoint"], code=args["code"], timeout=HTTP_TIMEOUT)
    except Exception as exc:  # any failure at the token endpoint means no sign-in
        raise SsoFailed("sso_token_exchange_failed") from exc
    claims = _verified_claims(provider, metadata, token.get("id_token", ""), flow["nonce"])
    email = str(claims.get("email", "")).strip().lower()
    if not email or claims.get("email_verified") is False or email.rpartition("@")[2] not in provider.domains:
        raise SsoFailed("sso_email_not_allowed", email)
    user = db.session.scalars(sa.select(User).where(User.email == email)).first()
    if user is None or not user.is_active or not _belongs_to_agency(user, provider.agency_id):
        raise SsoFailed("sso_unknown_user", email)
    return user, provider, flow["next"]
