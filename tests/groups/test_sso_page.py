"""An agency's SSO providers are set in the portal (what `flask sso add` does), by its admins only."""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db
from saas.members.models import SsoProvider
from tests.conftest import csrf_token
from tests.factories import gen_agency, gen_user
from tests.helpers import login

FORM = {"name": "Google Workspace", "metadata_url": "https://accounts.example/.well-known/openid-configuration",
        "client_id": "abc", "client_secret": "s3cret-value", "domains": "mirai.example, mirai-clinic.jp"}  # fmt: skip


def test_an_agency_admin_adds_a_provider_whose_secret_is_never_shown(client):
    agency = gen_agency()
    login(client, gen_user("admin", agency=agency))
    response = client.post(f"/agencies/{agency.slug}/sso", data={**FORM, "csrf_token": csrf_token(client)})
    assert response.status_code == 302
    provider = db.session.scalars(sa.select(SsoProvider)).one()
    assert provider.domains == {"mirai.example", "mirai-clinic.jp"} and provider.client_secret == "s3cret-value"
    page = client.get(f"/agencies/{agency.slug}/sso").get_data(as_text=True)
    assert "Google Workspace" in page and "s3cret-value" not in page
    client.post(f"/agencies/{agency.slug}/sso/{provider.id}/toggle", data={"csrf_token": csrf_token(client)})
    db.session.expire_all()
    assert db.session.get(SsoProvider, provider.id).enabled is False


def test_bad_input_is_refused_and_other_agencies_get_404(client):
    agency, other = gen_agency(), gen_agency()
    login(client, gen_user("admin", agency=agency))
    bad = client.post(
        f"/agencies/{agency.slug}/sso", data={**FORM, "metadata_url": "http://x", "csrf_token": csrf_token(client)}
    )
    assert bad.status_code == 422
    assert (
        client.post(f"/agencies/{other.slug}/sso", data={**FORM, "csrf_token": csrf_token(client)}).status_code == 404
    )
    assert db.session.scalar(sa.select(sa.func.count(SsoProvider.id))) == 0
