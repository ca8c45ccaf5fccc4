"""Only URLs the clinic wrote become short links: a URL filled in from a patient's name never does."""

from __future__ import annotations

import sqlalchemy as sa

from saas.autoreply.models import AutoReplyRule
from saas.extensions import db
from saas.friends.models import Friend
from saas.links.models import TrackedLink
from saas.tenancy.scoping import tenant_scope
from tests.delivery.support import add_friends, connected_clinic, drain
from tests.inbox.support import patient_writes, setup_chat
from tests.links.test_links import PATIENT, SHORT, inbox, send

EVIL = "https://evil.example"
SITE = "https://tsunagu-naika.example.jp/news?id=7"


def tracked_urls(clinic) -> set[str]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return set(db.session.scalars(sa.select(TrackedLink.url)))


def test_a_display_name_that_is_a_url_reaches_the_patient_as_plain_text_in_a_delivery(sandbox, sandbox_state, client):
    clinic = connected_clinic(sandbox, "1790000091")
    (patient,) = add_friends(sandbox, clinic, 1)
    with tenant_scope(clinic.id):
        db.session.execute(sa.update(Friend).where(Friend.line_user_id == patient).values(display_name=EVIL))
        db.session.commit()
    send(
        clinic,
        [{"type": "text", "text": f"{{{{friend.display_name}}}}さま\nお知らせ {SITE}\n{{{{friend.display_name}}}}/x"}],
    )
    drain()

    (message,) = inbox(sandbox_state, clinic, patient)
    assert message["text"].startswith(f"{EVIL}さま") and f"{EVIL}/x" in message["text"]
    (code,) = SHORT.findall(message["text"])
    assert client.get(f"/l/{code}", headers={"User-Agent": PATIENT}).headers["Location"] == SITE
    assert tracked_urls(clinic) == {SITE}


def test_an_auto_reply_naming_the_patient_tracks_only_the_clinics_link(sandbox, live_server, client, app):
    clinic, channel, _ = setup_chat(sandbox, live_server, client)
    with tenant_scope(clinic.id):
        text = f"{{{{friend.display_name}}}}さま、地図です {SITE}"
        db.session.add(AutoReplyRule(name="地図", keywords=["地図"], messages=[{"type": "text", "text": text}]))
        db.session.commit()
    patient = patient_writes(sandbox, channel, EVIL, "地図")

    answer = sandbox.inbox(channel, patient)[-1]["message"]["text"]
    assert answer.startswith(f"{EVIL}さま")
    (code,) = SHORT.findall(answer)
    assert app.test_client().get(f"/l/{code}", headers={"User-Agent": PATIENT}).headers["Location"] == SITE
    assert tracked_urls(clinic) == {SITE}
