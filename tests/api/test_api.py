"""The REST API: keys and scopes, tenant isolation, problem details, paging, idempotency, rate limit, audit."""

from __future__ import annotations

import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.delivery.models import Delivery
from saas.extensions import db
from saas.friends.models import Friend
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.api.support import bearer, make_key
from tests.factories import gen_agency, gen_clinic, gen_organization

PROBLEM = "application/problem+json"


def _friends(clinic, count: int) -> list[int]:
    with tenant_scope(clinic.id):
        rows = [
            Friend(line_user_id=f"U{clinic.id:04d}{i:028d}", display_name=f"患者{i}", consent_marketing=True)
            for i in range(count)
        ]
        db.session.add_all(rows)
        db.session.commit()
        return [r.id for r in rows]


def _two_agencies():
    mine, theirs = gen_agency(), gen_agency()
    my_org, their_org = gen_organization(mine), gen_organization(theirs)
    return gen_clinic(my_org), gen_clinic(my_org), gen_clinic(their_org), mine, theirs


def test_an_agency_key_lists_its_clients_clinics_and_nothing_of_another_agency(client):
    first, second, foreign, mine, _ = _two_agencies()
    response = client.get("/api/v1/clinics", headers=bearer(make_key(agency=mine)))
    assert response.status_code == 200
    assert {c["slug"] for c in response.json["data"]} == {first.slug, second.slug}


def test_another_agencys_key_gets_404_for_every_clinic_url_and_changes_nothing(client):
    first, _, foreign, mine, theirs = _two_agencies()
    friend_id = _friends(first, 1)[0]
    token = make_key(agency=theirs)
    base = f"/api/v1/clinics/{first.slug}"
    calls = [
        ("get", base, None), ("get", f"{base}/friends", None), ("get", f"{base}/friends/{friend_id}", None),
        ("post", f"{base}/friends/{friend_id}/tags", {"add": ["VIP"]}),
        ("post", f"{base}/deliveries", {"messages": [{"type": "text", "text": "x"}]}),
        ("post", f"{base}/closures", {"starts_on": "2030-01-06"}), ("get", f"{base}/manifest", None),
        ("get", f"{base}/audit-events", None), ("get", f"{base}/faq-rules", None),
    ]  # fmt: skip
    for method, url, body in calls:
        response = getattr(client, method)(url, json=body, headers={**bearer(token), "Idempotency-Key": "k1"})
        assert response.status_code == 404, url
        assert response.mimetype == PROBLEM and response.json["status"] == 404
    with platform_scope("test"):
        assert db.session.scalar(sa.select(sa.func.count(Delivery.id))) == 0
        assert db.session.get(Friend, friend_id).tags == []


def test_the_same_friend_id_under_ones_own_clinic_url_is_not_found_either(client):
    first, second, _, mine, _ = _two_agencies()
    friend_of_second = _friends(second, 1)[0]
    token = make_key(clinic=first)
    assert (
        client.get(f"/api/v1/clinics/{first.slug}/friends/{friend_of_second}", headers=bearer(token)).status_code == 404
    )
    assert client.get(f"/api/v1/clinics/{second.slug}", headers=bearer(token)).status_code == 404


def test_missing_unknown_and_revoked_keys_get_401_problems(client):
    from saas.api import keys
    from saas.api.models import ApiKey

    clinic = gen_clinic()
    token = make_key(clinic=clinic)
    assert client.get("/api/v1/clinics").status_code == 401
    wrong = client.get("/api/v1/clinics", headers=bearer(token[:-2] + "xx"))
    assert wrong.status_code == 401 and wrong.mimetype == PROBLEM and wrong.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/api/v1/clinics", headers=bearer(token)).status_code == 200
    keys.revoke(db.session.scalars(sa.select(ApiKey)).one())
    db.session.commit()
    assert client.get("/api/v1/clinics", headers=bearer(token)).status_code == 401


def test_tokens_are_stored_only_as_hashes(client):
    from saas.api.models import ApiKey

    token = make_key(clinic=gen_clinic())
    row = db.session.scalars(sa.select(ApiKey)).one()
    assert token.split("_", 2)[2] not in row.secret_hash and len(row.secret_hash) == 64


def test_a_viewer_key_may_read_but_not_send(client):
    clinic = gen_clinic()
    token = make_key("viewer", clinic=clinic)
    assert client.get(f"/api/v1/clinics/{clinic.slug}/friends", headers=bearer(token)).status_code == 200
    response = client.post(
        f"/api/v1/clinics/{clinic.slug}/deliveries",
        json={"messages": [{"type": "text", "text": "x"}]},
        headers={**bearer(token), "Idempotency-Key": "a"},
    )
    assert response.status_code == 403 and response.json["title"] == "Forbidden"


def test_friends_are_paged_by_cursor_without_gaps_or_repeats(client):
    clinic = gen_clinic()
    ids = _friends(clinic, 7)
    token, seen, after = make_key(clinic=clinic), [], 0
    while True:
        page = client.get(f"/api/v1/clinics/{clinic.slug}/friends?limit=3&after={after}", headers=bearer(token)).json
        seen += [f["id"] for f in page["data"]]
        if not page["next_cursor"]:
            break
        after = page["next_cursor"]
    assert seen == ids
    bad = client.get(f"/api/v1/clinics/{clinic.slug}/friends?limit=0", headers=bearer(token))
    assert bad.status_code == 422 and bad.mimetype == PROBLEM


def test_tags_and_fields_are_written_and_a_bad_value_writes_nothing(client):
    from saas.fields.models import FriendField

    clinic = gen_clinic()
    friend_id = _friends(clinic, 1)[0]
    with tenant_scope(clinic.id):
        db.session.add(FriendField(key="age_band", label="年代", kind="choice", choices=["30代", "40代"]))
        db.session.add(FriendField(key="visits", label="来院回数", kind="number"))
        db.session.commit()
    token, url = make_key(clinic=clinic), f"/api/v1/clinics/{clinic.slug}/friends/{friend_id}"
    tagged = client.post(f"{url}/tags", json={"add": ["子育て", "VIP"]}, headers=bearer(token))
    assert tagged.status_code == 200 and tagged.json["tags"] == ["VIP", "子育て"]
    assert client.post(f"{url}/tags", json={"remove": ["VIP"]}, headers=bearer(token)).json["tags"] == ["子育て"]
    bad = client.patch(
        f"{url}/fields", json={"values": {"age_band": "30代", "visits": "たくさん"}}, headers=bearer(token)
    )
    assert bad.status_code == 422 and bad.json["errors"][0]["pointer"] == "/values/visits"
    assert client.get(url, headers=bearer(token)).json["fields"] == {}
    good = client.patch(f"{url}/fields", json={"values": {"age_band": "30代", "visits": "3"}}, headers=bearer(token))
    assert good.json["fields"] == {"age_band": "30代", "visits": "3"}


def test_an_invalid_body_is_a_422_naming_the_field(client):
    clinic = gen_clinic()
    response = client.post(
        f"/api/v1/clinics/{clinic.slug}/faq-rules",
        json={"name": "駐車場", "keywords": []},
        headers=bearer(make_key(clinic=clinic)),
    )
    assert response.status_code == 422 and response.mimetype == PROBLEM
    assert {e["pointer"] for e in response.json["errors"]} == {"/keywords", "/reply"}


def test_faq_rules_round_trip_and_answer_patients(client):
    from saas.autoreply.services import reply_to

    clinic = gen_clinic()
    token, url = make_key(clinic=clinic), f"/api/v1/clinics/{clinic.slug}/faq-rules"
    body = {"name": "駐車場", "keywords": ["駐車場"], "reply": ["提携駐車場があります"]}
    created = client.post(url, json=body, headers=bearer(token))
    assert created.status_code == 201
    with tenant_scope(clinic.id):
        assert reply_to(clinic, "駐車場はありますか", dry_run=True).messages[0]["text"] == "提携駐車場があります"
        db.session.rollback()  # the answer created the clinic's default settings; the API writes next
    rule_url = f"{url}/{created.json['id']}"
    assert client.put(rule_url, json={**body, "priority": 5}, headers=bearer(token)).json["priority"] == 5
    assert client.delete(rule_url, headers=bearer(token)).status_code == 204
    assert client.get(rule_url, headers=bearer(token)).status_code == 404


def test_a_faq_reply_the_advertising_guideline_forbids_is_refused_naming_the_phrase(client):
    clinic = gen_clinic()
    token, url = make_key(clinic=clinic), f"/api/v1/clinics/{clinic.slug}/faq-rules"
    body = {"name": "治療", "keywords": ["治療"], "reply": ["ご予約ください", "日本一の技術で必ず治ります"]}
    refused = client.post(url, json=body, headers=bearer(token))
    assert refused.status_code == 422 and refused.mimetype == PROBLEM
    assert {e["pointer"] for e in refused.json["errors"]} == {"/reply/1"}
    assert any("日本一" in e["detail"] for e in refused.json["errors"])
    assert client.get(url, headers=bearer(token)).json["data"] == []
    fine = client.post(url, json={**body, "reply": ["当院の医師が丁寧にご説明します"]}, headers=bearer(token))
    assert fine.status_code == 201


def test_every_call_of_a_key_is_audited_with_its_clinic(client):
    clinic = gen_clinic()
    token = make_key("viewer", clinic=clinic)
    client.get(f"/api/v1/clinics/{clinic.slug}/friends", headers=bearer(token))
    client.post(f"/api/v1/clinics/{clinic.slug}/faq-rules", json={}, headers=bearer(token))
    events = db.session.scalars(
        sa.select(AuditEvent).where(AuditEvent.action == "api.call").order_by(AuditEvent.id)
    ).all()
    assert [(e.clinic_id, e.details["operation"], e.details["status"]) for e in events] == [
        (clinic.id, "list_friends", 200),
        (clinic.id, "create_rule", 403),
    ]
    assert events[0].actor_email.startswith("api-key:")


def test_a_key_past_its_rate_gets_429_with_retry_after(app, client):
    clinic = gen_clinic()
    token = make_key(clinic=clinic)
    before, app.config["API_RATE_LIMIT"] = app.config.get("API_RATE_LIMIT"), (3, 60)
    try:
        codes = [client.get("/api/v1/clinics", headers=bearer(token)).status_code for _ in range(4)]
        other = client.get("/api/v1/clinics", headers=bearer(make_key(clinic=clinic))).status_code
    finally:
        app.config["API_RATE_LIMIT"] = before
    assert codes == [200, 200, 200, 429] and other == 200


def test_the_rate_bucket_is_hash_tagged_per_key():
    from saas.api.blueprint import rate_bucket_key
    from saas.api.models import ApiKey

    assert rate_bucket_key(ApiKey(id=7)) == "tsunagu:{apikey:7}:ratelimit"


def test_the_openapi_document_is_31_and_names_every_operation(client):
    document = client.get("/api/v1/openapi.json").json
    assert document["openapi"] == "3.1.0"
    operations = {op["operationId"] for methods in document["paths"].values() for op in methods.values()}
    assert {
        "list_clinics",
        "list_friends",
        "create_delivery",
        "get_delivery",
        "create_closure",
        "apply_manifest",
        "export_manifest",
        "list_audit_events",
        "create_rule",
    } <= operations
    delivery = document["paths"]["/clinics/{clinic_slug}/deliveries"]["post"]
    assert any(p["name"] == "Idempotency-Key" and p["required"] for p in delivery["parameters"])


def test_idempotency_answers_older_than_a_day_are_forgotten(client):
    from datetime import timedelta

    from saas.api.jobs import purge_idempotency_keys
    from saas.api.models import ApiIdempotency, ApiKey
    from saas.common import utcnow

    make_key(clinic=gen_clinic())
    key_id = db.session.scalar(sa.select(ApiKey.id))
    db.session.add_all(
        [
            ApiIdempotency(api_key_id=key_id, key="old", fingerprint="x", created_at=utcnow() - timedelta(hours=25)),
            ApiIdempotency(api_key_id=key_id, key="new", fingerprint="x"),
        ]
    )
    db.session.commit()
    assert purge_idempotency_keys() == 1
    assert db.session.scalars(sa.select(ApiIdempotency.key)).all() == ["new"]


def test_a_segments_day_counts_have_the_portals_bounds():
    """A segment saved in the portal (up to 36,500 days) can be sent through the API as well."""
    import pytest
    from pydantic import ValidationError

    from saas.api.schemas import Segment

    assert Segment(messaged_within_days=5000, silent_for_days=36500).silent_for_days == 36500
    with pytest.raises(ValidationError):
        Segment(silent_for_days=36501)
