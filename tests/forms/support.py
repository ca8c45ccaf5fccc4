"""A clinic with LINE Login, a following patient, friend fields and a form built through the portal."""

from __future__ import annotations

import re
from urllib.parse import urljoin

import requests
import sqlalchemy as sa

from saas.extensions import db
from saas.fields import services as fields
from saas.fields.models import FriendField
from saas.forms.models import Form
from saas.friends.models import Friend
from saas.tenancy.scoping import tenant_scope
from tests.booking.support import booking_clinic
from tests.conftest import csrf_token
from tests.factories import gen_user
from tests.helpers import login
from tests.webhooks.support import run_jobs

# The builder's rows, as staff fill them in on the form page.
VACCINE_FORM = {
    "name": "予防接種の希望",
    "purpose": "vaccination",
    "description": "ご希望をお選びください。",
    "thanks": "ご案内をお待ちください。",
    "q-0-label": "ご希望の予防接種",
    "q-0-kind": "multi_choice",
    "q-0-required": "1",
    "q-0-choices": "インフルエンザ\n新型コロナ",
    "q-0-tags": "インフルエンザ=インフル希望\n新型コロナ=コロナ希望",
    "q-1-label": "年代",
    "q-1-kind": "choice",
    "q-1-choices": "30代\n40代",
    "q-1-field_id": "AGE",
    "q-2-label": "服用中のお薬",
    "q-2-kind": "text",
    "q-2-sensitive": "1",
    "q-3-label": "前回のご来院日",
    "q-3-kind": "date",
    "q-3-visit": "1",
    "q-4-label": "お知らせをLINEで受け取る",
    "q-4-kind": "consent",
    "q-4-consent": "marketing",
}


def form_clinic(sandbox, live_server, name: str = "つなぐ内科"):
    """(clinic, channel, patient user id): booking's LINE Login channel, a following patient."""
    clinic, channel, _ = booking_clinic(sandbox, live_server, name=name)
    patient = sandbox.add_patient(channel, "高橋 美咲")
    sandbox.follow(channel, patient)
    run_jobs()
    with tenant_scope(clinic.id):
        fields.save_field(FriendField(), key="age_band", label="年代", kind="choice", choices=["30代", "40代"])
        fields.save_field(FriendField(), key="last_visit", label="最終来院日", kind="date")
        db.session.commit()
    return clinic, channel, patient


def build_form(client, clinic, rows: dict | None = None) -> Form:
    """Create the form through the builder page as an admin; returns the stored form."""
    login(client, gen_user("admin", clinic=clinic))
    with tenant_scope(clinic.id):
        age = fields.get_by_key("age_band")
    data = {k: (str(age.id) if v == "AGE" else v) for k, v in (rows or VACCINE_FORM).items()}
    answer = client.post(f"/c/{clinic.slug}/forms/new", data={**data, "csrf_token": csrf_token(client)})
    assert answer.status_code == 302, answer.get_data(as_text=True)
    db.session.expire_all()
    with tenant_scope(clinic.id):
        form = db.session.scalar(sa.select(Form).where(Form.name == data["name"]))
        db.session.expunge(form)
    return form


def sign_in_to_form(browser: requests.Session, url: str, user_id: str) -> requests.Response:
    """Open a form link and approve LINE Login in the sandbox as ``user_id``; the form page."""
    opened = browser.get(url, allow_redirects=False, timeout=10)
    assert (
        opened.status_code == 302 and "/book/" in opened.headers["Location"] and "/login" in opened.headers["Location"]
    )
    to_line = browser.get(urljoin(url, opened.headers["Location"]), allow_redirects=False, timeout=10)
    assert "/oauth2/v2.1/authorize" in to_line.headers["Location"]
    back = browser.get(to_line.headers["Location"] + f"&sandbox_user={user_id}", allow_redirects=False, timeout=10)
    return browser.get(urljoin(url, back.headers["Location"]), timeout=10)  # the callback, which returns to the form


def page_token(html: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', html).group(1)


def friend_of(clinic, user_id: str) -> Friend:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return db.session.scalar(sa.select(Friend).where(Friend.line_user_id == user_id))
