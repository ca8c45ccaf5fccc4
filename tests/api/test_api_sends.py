"""Sends through the API reach patients through the sandbox, once per Idempotency-Key."""

from __future__ import annotations

import sqlalchemy as sa

from saas.delivery.models import Delivery
from saas.extensions import db
from saas.tenancy.scoping import tenant_scope
from tests.api.support import bearer, make_key
from tests.delivery.support import add_friends, connected_clinic, drain

NOTICE = {"kind": "broadcast", "messages": [{"type": "text", "text": "{{clinic.name}}です。年末年始の診療のお知らせ"}]}


def _inboxes(sandbox_server, channel_id: str, user_ids) -> list[list[str]]:
    patients = sandbox_server.app.extensions["line_sandbox"].channels[channel_id].patients
    return [[entry["message"].get("text") for entry in patients[u].inbox] for u in user_ids]


def test_a_delivery_posted_twice_with_one_idempotency_key_is_sent_once(client, sandbox, sandbox_server):
    clinic = connected_clinic(sandbox, "1800000001")
    patients = add_friends(sandbox, clinic, 3)
    token, url = make_key("sender", clinic=clinic), f"/api/v1/clinics/{clinic.slug}/deliveries"
    headers = {**bearer(token), "Idempotency-Key": "newyear-2027"}
    first = client.post(url, json=NOTICE, headers=headers)
    again = client.post(url, json=NOTICE, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json["id"] == first.json["id"] and again.headers["Idempotent-Replayed"] == "true"
    other_body = client.post(url, json={**NOTICE, "title": "別の配信"}, headers=headers)
    assert other_body.status_code == 422
    drain()

    progress = client.get(f"{url}/{first.json['id']}", headers=bearer(token)).json
    assert (progress["status"], progress["sent"], progress["targeted"]) == ("done", 3, 3)
    assert all(len(inbox) == 1 for inbox in _inboxes(sandbox_server, "1800000001", patients))
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(Delivery.id))) == 1


def test_a_delivery_without_an_idempotency_key_is_refused_before_anything_is_made(client, sandbox):
    clinic = connected_clinic(sandbox, "1800000002")
    response = client.post(
        f"/api/v1/clinics/{clinic.slug}/deliveries", json=NOTICE, headers=bearer(make_key(clinic=clinic))
    )
    assert response.status_code == 422 and "Idempotency-Key" in response.json["detail"]
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(Delivery.id))) == 0


def test_invalid_messages_are_named_and_nothing_is_created(client, sandbox):
    clinic = connected_clinic(sandbox, "1800000003")
    body = {"messages": [{"type": "text", "text": "{{friend.nickname}}さん"}]}
    response = client.post(
        f"/api/v1/clinics/{clinic.slug}/deliveries",
        json=body,
        headers={**bearer(make_key(clinic=clinic)), "Idempotency-Key": "x"},
    )
    assert response.status_code == 422 and response.json["errors"][0]["pointer"].startswith("/messages/")


def test_a_closure_posted_with_urgent_notice_reaches_every_following_friend(client, sandbox, sandbox_server):
    clinic = connected_clinic(sandbox, "1800000004")
    patients = add_friends(sandbox, clinic, 2, consent_marketing=False)  # urgent notices need no consent
    token = make_key("sender", clinic=clinic)
    body = {"starts_on": "2030-01-07", "reason": "院長学会出張", "notify": "urgent"}
    response = client.post(
        f"/api/v1/clinics/{clinic.slug}/closures", json=body, headers={**bearer(token), "Idempotency-Key": "c-1"}
    )
    assert response.status_code == 201 and response.json["notify_friends"] is True
    assert (response.json["notice_status"], response.json["delivery_id"]) == ("pending", None)
    drain()
    inboxes = _inboxes(sandbox_server, "1800000004", patients)
    assert all(len(inbox) == 1 and "休診" in inbox[0] and clinic.name in inbox[0] for inbox in inboxes)
    closures = client.get(f"/api/v1/clinics/{clinic.slug}/closures?from_date=2030-01-01", headers=bearer(token)).json
    [listed] = closures["data"]
    assert listed["starts_on"] == "2030-01-07" and listed["notice_status"] == "sent"
    delivery = client.get(f"/api/v1/clinics/{clinic.slug}/deliveries/{listed['delivery_id']}", headers=bearer(token))
    assert (delivery.json["status"], delivery.json["sent"]) == ("done", 2)


def test_a_manifest_dry_run_lists_changes_and_applies_nothing(client):
    from tests.factories import gen_clinic

    clinic = gen_clinic(phone="03-0000-0000")
    token, url = make_key(clinic=clinic), f"/api/v1/clinics/{clinic.slug}/manifest"
    section = client.get(url, headers=bearer(token)).json["manifest"]["clinics"][0]
    section["profile"] = {**section.get("profile", {}), "phone": "03-1234-5678"}
    dry = client.post(url, json=section, headers=bearer(token))
    assert dry.status_code == 200 and dry.json["dry_run"] is True
    assert any("phone" in change for change in dry.json["changes"])
    assert client.get(f"/api/v1/clinics/{clinic.slug}", headers=bearer(token)).json["phone"] == "03-0000-0000"
    applied = client.post(f"{url}?dry_run=false", json=section, headers=bearer(token))
    assert applied.json["dry_run"] is False
    assert client.get(f"/api/v1/clinics/{clinic.slug}", headers=bearer(token)).json["phone"] == "03-1234-5678"


def test_a_manifest_may_not_read_server_secrets_or_name_another_clinic(client):
    from tests.factories import gen_clinic

    clinic = gen_clinic()
    token, url = make_key(clinic=clinic), f"/api/v1/clinics/{clinic.slug}/manifest?dry_run=false"
    secret = {"slug": clinic.slug, "name": clinic.name, "channel": {"channel_secret_env": "SECRET_KEY"}}
    assert client.post(url, json=secret, headers=bearer(token)).status_code == 422
    other = {"slug": "someone-else", "name": "x"}
    response = client.post(url, json=other, headers=bearer(token))
    assert response.status_code == 422 and response.json["errors"][0]["pointer"] == "/slug"


def test_a_marketing_send_while_billing_paused_it_answers_refused_with_the_reason(client, sandbox, sandbox_server):
    from saas.billing.models import BillingAccount
    from saas.common import utcnow
    from tests.factories import gen_agency, gen_organization

    agency = gen_agency()
    clinic = connected_clinic(sandbox, "1800000009", organization=gen_organization(agency))
    patients = add_friends(sandbox, clinic, 2)
    db.session.add(
        BillingAccount(
            agency_id=agency.id,
            plan_key="clinic_monthly",
            stripe_subscription_id="sub_paused",
            stripe_customer_id="cus_paused",
            status="past_due",
            quantity=1,
            marketing_paused_at=utcnow(),
        )
    )
    db.session.commit()
    token, url = make_key("sender", clinic=clinic), f"/api/v1/clinics/{clinic.slug}/deliveries"
    answer = client.post(url, json=NOTICE, headers={**bearer(token), "Idempotency-Key": "paused-1"})
    assert answer.status_code == 202, answer.get_data(as_text=True)
    assert answer.json["status"] == "refused" and answer.json["stop_reason"]
    drain()
    assert _inboxes(sandbox_server, "1800000009", patients) == [[], []]
