"""Single sign-on against a tiny OpenID Connect provider served over real HTTP in the test."""

from __future__ import annotations

import secrets
import time
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
import requests
import sqlalchemy as sa
from flask import Flask, jsonify, redirect, request
from joserfc import jwt
from joserfc.jwk import RSAKey

from saas.audit.models import AuditEvent
from saas.extensions import db
from saas.members.models import SsoProvider
from tests.conftest import LiveServer, csrf_token
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user, totp_code

CLIENT_ID, CLIENT_SECRET = "tsunagu-client", "s3cret"


class TinyOidcProvider:
    """Discovery, authorize (auto-approves as ``self.email``), token and JWKS endpoints."""

    def __init__(self):
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-key"})
        self.email = ""
        self.codes: dict[str, str] = {}  # code -> nonce
        self.app = self._build()
        self.server = LiveServer(self.app)
        self.issuer = self.server.url

    def _build(self) -> Flask:
        app = Flask("tiny-oidc")

        @app.get("/.well-known/openid-configuration")
        def discovery():
            return jsonify(
                issuer=self.issuer,
                authorization_endpoint=f"{self.issuer}/authorize",
                token_endpoint=f"{self.issuer}/token",
                jwks_uri=f"{self.issuer}/jwks",
            )

        @app.get("/authorize")
        def authorize():
            assert request.args["client_id"] == CLIENT_ID and "openid" in request.args["scope"]
            code = secrets.token_urlsafe(8)
            self.codes[code] = request.args["nonce"]
            query = urlencode({"code": code, "state": request.args["state"]})
            return redirect(f"{request.args['redirect_uri']}?{query}")

        @app.post("/token")
        def token():
            if request.form.get("client_secret") != CLIENT_SECRET or request.form["code"] not in self.codes:
                return jsonify(error="invalid_grant"), 400
            nonce = self.codes.pop(request.form["code"])
            now = int(time.time())
            claims = {"iss": self.issuer, "aud": CLIENT_ID, "sub": self.email, "email": self.email}
            claims.update(email_verified=True, nonce=nonce, iat=now, exp=now + 300)
            id_token = jwt.encode({"alg": "RS256", "kid": "test-key"}, claims, self.key)
            return jsonify(access_token="at", token_type="Bearer", expires_in=300, id_token=id_token)

        @app.get("/jwks")
        def jwks():
            return jsonify(keys=[self.key.as_dict(private=False)])

        return app


@pytest.fixture(scope="module")
def idp():
    provider = TinyOidcProvider()
    yield provider
    provider.server.stop()


@pytest.fixture
def agency_with_sso(idp):
    agency = gen_agency()
    clinic = gen_clinic(gen_organization(agency))
    db.session.add(
        SsoProvider(
            agency_id=agency.id,
            name="テストIdP",
            metadata_url=f"{idp.issuer}/.well-known/openid-configuration",
            client_id=CLIENT_ID,
            client_secret=CLIENT_SECRET,
            email_domains="sso-clinic.jp",
        )
    )
    db.session.commit()
    return clinic


def _sign_in_with_sso(client, idp, email: str):
    start = client.post("/auth/sso/start", data={"email": email, "password": "", "csrf_token": csrf_token(client)})
    assert start.status_code == 303 and start.headers["Location"].startswith(idp.issuer)
    assert parse_qs(urlparse(start.headers["Location"]).query)["login_hint"] == [email]
    at_idp = requests.get(start.headers["Location"], allow_redirects=False, timeout=5)
    back = urlparse(at_idp.headers["Location"])
    return client.get(f"{back.path}?{back.query}")


def test_login_page_offers_sso_only_when_a_provider_exists(client, agency_with_sso):
    assert "SSOでログイン" in client.get("/auth/login").get_data(as_text=True)
    db.session.execute(sa.update(SsoProvider).values(enabled=False))
    db.session.commit()
    assert "SSOでログイン" not in client.get("/auth/login").get_data(as_text=True)


def test_staff_of_the_agency_sign_in_with_sso_then_two_factor(client, idp, agency_with_sso):
    clinic = agency_with_sso
    user = gen_user("admin", clinic=clinic)
    user.email = idp.email = "doctor@sso-clinic.jp"
    db.session.commit()
    response = _sign_in_with_sso(client, idp, user.email)
    assert response.status_code == 302 and response.headers["Location"].endswith("/auth/two-factor")
    client.post("/auth/two-factor", data={"code": totp_code(user), "csrf_token": csrf_token(client)})
    assert client.get(f"/c/{clinic.slug}/").status_code == 200
    actions = set(db.session.scalars(sa.select(AuditEvent.action).where(AuditEvent.actor_user_id == user.id)))
    assert {"login.success", "login.sso", "two_factor.success"} <= actions


def test_sso_is_refused_for_someone_outside_the_agency(client, idp, agency_with_sso):
    outsider = gen_user("viewer", clinic=gen_clinic())  # another agency's clinic
    outsider.email = idp.email = "intruder@sso-clinic.jp"
    db.session.commit()
    response = _sign_in_with_sso(client, idp, outsider.email)
    assert response.status_code == 303 and response.headers["Location"].endswith("/auth/login")
    assert client.get("/").status_code == 302  # still signed out
    reasons = [e.details["reason"] for e in db.session.scalars(sa.select(AuditEvent))]
    assert reasons == ["sso_unknown_user"]


def test_callback_with_a_forged_state_is_refused(client, idp, agency_with_sso):
    response = client.get("/auth/sso/callback?code=x&state=forged")
    assert response.status_code == 303 and response.headers["Location"].endswith("/auth/login")
    assert client.get("/").status_code == 302


def test_email_domain_without_provider_is_sent_back_to_password_login(client, agency_with_sso):
    response = client.post("/auth/sso/start", data={"email": "a@other.jp", "csrf_token": csrf_token(client)})
    assert response.status_code == 303 and response.headers["Location"].endswith("/auth/login")
