"""Helpers for billing tests: an agency whose clinic is on the LINE sandbox, its owner signed in,
Checkout clicked through on the Stripe stand-in, the mail outbox read."""

from __future__ import annotations

import email
import itertools
import re
from urllib.parse import urlsplit

import requests
import sqlalchemy as sa

from saas.billing.models import BillingAccount
from saas.extensions import db
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user
from tests.helpers import login

_seq = itertools.count(1)


def clinic_on_line(sandbox, live_server, organization, name: str = "つなぐ内科"):
    """A clinic of ``organization`` whose LINE channel is in the sandbox, webhooks to the live app."""
    n = next(_seq)
    channel_id, secret, token = f"31000{n:05d}", f"secret{n:02d}" + "d" * 24, f"token-{n}-" + "e" * 40
    clinic = gen_clinic(
        organization, name=name, line_channel_id=channel_id, line_channel_secret=secret, line_access_token=token
    )
    channel = sandbox.add_channel(
        channel_id, secret, token, plan="standard", webhook_url=f"{live_server.url}/webhooks/line/{clinic.webhook_key}"
    )
    clinic.line_bot_user_id = channel.get("botUserId")
    db.session.commit()
    with tenant_scope(clinic.id):
        from saas.quota.plans import set_clinic_plan

        set_clinic_plan(clinic.id, "standard", extra_allowed=True)
    return clinic, channel_id


def agency_with_owner(client, name: str = "みらいメディカル"):
    """An agency with one organization, its owner signed in on ``client``."""
    agency = gen_agency(name)
    organization = gen_organization(agency)
    owner = gen_user("owner", agency=agency)
    login(client, owner)
    client.user = owner
    return agency, organization, owner


def csrf(client, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)


def billing_path(level: str, slug: str) -> str:
    return f"/billing/{level}/{slug}/"


def start_checkout(client, level: str, slug: str):
    """Press 申し込む: the answer redirects to the stand-in's Checkout page."""
    path = billing_path(level, slug)
    return client.post(path + "checkout", data={"csrf_token": csrf(client, path)})


def pay_on_checkout(client, checkout_url: str):
    """On the stand-in's Checkout page press 支払う, then follow the redirect back into the portal."""
    assert requests.get(checkout_url, timeout=30).status_code == 200
    paid = requests.post(checkout_url + "/pay", allow_redirects=False, timeout=60)
    assert paid.status_code == 303
    back = urlsplit(paid.headers["Location"])
    return client.get(f"{back.path}?{back.query}")


def subscribe(client, level: str, slug: str):
    """Checkout start to finish; returns the billing page the owner lands on."""
    started = start_checkout(client, level, slug)
    assert started.status_code == 303, started.get_data(as_text=True)
    return pay_on_checkout(client, started.headers["Location"])


def account(**by) -> BillingAccount:
    db.session.expire_all()
    return db.session.scalars(sa.select(BillingAccount).filter_by(**by)).one()


def mails(outbox) -> list[email.message.Message]:
    return [
        email.message_from_bytes(p.read_bytes()) for p in sorted(outbox.glob("*.eml"), key=lambda p: p.stat().st_mtime)
    ]


def subjects(outbox) -> list[str]:
    return [str(email.header.make_header(email.header.decode_header(m["Subject"]))) for m in mails(outbox)]
