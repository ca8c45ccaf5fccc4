"""Secure headers and cookies on every response."""

from __future__ import annotations

from tests.factories import gen_clinic, gen_user
from tests.helpers import login


def test_every_response_carries_the_security_headers(client):
    for path in ("/auth/login", "/healthz", "/no-such-page"):
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
        assert "frame-ancestors 'none'" in csp and "object-src 'none'" in csp
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
        assert "Strict-Transport-Security" not in headers  # plain HTTP: no HSTS


def test_hsts_only_over_https(client):
    headers = client.get("/auth/login", base_url="https://tsunagu.example").headers
    assert headers["Strict-Transport-Security"].startswith("max-age=")


def test_portal_pages_have_no_inline_scripts_and_are_not_cached(client):
    clinic = gen_clinic()
    login(client, gen_user("viewer", clinic=clinic))
    response = client.get(f"/c/{clinic.slug}/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "onchange=" not in html and "onclick=" not in html
    assert "js/portal.js" in html
    assert client.get("/static/js/portal.js").status_code == 200


def test_session_cookie_is_httponly_and_samesite(client):
    response = client.get("/auth/login")
    cookie = response.headers.get("Set-Cookie", "")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_cookies_are_secure_with_host_prefix_behind_https():
    from saas.security.headers import configure_cookies

    class FakeApp:
        config = {"PUBLIC_BASE_URL": "https://tsunagu.example", "SESSION_COOKIE_SECURE": False}

    configure_cookies(FakeApp)
    assert FakeApp.config["SESSION_COOKIE_SECURE"] is True
    assert FakeApp.config["SESSION_COOKIE_NAME"].startswith("__Host-")
