"""The live check endpoint, the rules page, an organization's overrides page, and the gate on the
FAQ answer form (warnings acknowledged, blocks approved by an admin, both audited)."""

from __future__ import annotations

import sqlalchemy as sa

from saas.adcheck.models import AdRuleOverride
from saas.audit.models import AuditEvent
from saas.autoreply.models import AutoReplyRule
from saas.extensions import db
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.conftest import csrf_token
from tests.factories import gen_clinic, gen_organization, gen_user
from tests.helpers import login


def check(client, clinic, payload):
    return client.post(f"/c/{clinic.slug}/adcheck/check", json=payload, headers={"X-CSRFToken": csrf_token(client)})


def test_the_check_endpoint_returns_findings_with_spans(client):
    clinic = gen_clinic()
    login(client, gen_user("sender", clinic=clinic))
    answer = check(client, clinic, {"text": "当院は地域ＮＯ．１！初診料無料キャンペーン"})
    assert answer.status_code == 200
    findings = answer.get_json()["findings"]
    assert [(f["rule_id"], f["phrase"], f["severity"]) for f in findings] == [
        ("superlative", "地域ＮＯ．１", "block"),
        ("insured_price", "初診料無料", "block"),
    ]
    first = findings[0]
    assert "当院は地域ＮＯ．１！初診料無料キャンペーン"[first["start"] : first["end"]] == first["phrase"]
    assert first["explanation"] and first["source"].startswith("医療法")
    assert check(client, clinic, {"text": "明日は休診です"}).get_json() == {"findings": []}


def test_the_check_endpoint_refuses_bad_input_and_other_clinics(client):
    clinic, other = gen_clinic(), gen_clinic(name="別院")
    login(client, gen_user("sender", clinic=clinic))
    assert check(client, clinic, ["not", "an", "object"]).status_code == 400
    assert check(client, clinic, {"text": "あ" * 20_001}).status_code == 400
    assert check(client, clinic, {"texts": {"a": 3}}).status_code == 400
    assert check(client, other, {"text": "日本一"}).status_code == 404
    no_token = client.post(f"/c/{clinic.slug}/adcheck/check", json={"text": "日本一"})
    assert no_token.status_code == 400


def test_an_organization_admin_overrides_a_rule_for_every_branch(client):
    organization = gen_organization()
    branch, other_branch = gen_clinic(organization), gen_clinic(organization, name="分院")
    admin = gen_user("admin", organization=organization)
    login(client, admin)
    page = client.get(f"/c/{branch.slug}/adcheck").get_data(as_text=True)
    assert "比較優良広告" in page and "法人のルール設定を編集" in page
    assert "プレゼント" in client.get(f"/organizations/{organization.slug}/adcheck").get_data(as_text=True)
    saved = client.post(
        f"/organizations/{organization.slug}/adcheck/free_gift",
        data={"csrf_token": csrf_token(client), "severity": "warning", "extra_phrases": ""},
    )
    assert saved.status_code == 302
    client.post(
        f"/organizations/{organization.slug}/adcheck/superlative",
        data={"csrf_token": csrf_token(client), "enabled": "1", "severity": "warning", "allowed_phrases": "最高裁"},
    )
    findings = check(client, other_branch, {"text": "シールをプレゼント。最高裁と最高の技術"}).get_json()["findings"]
    assert [(f["rule_id"], f["severity"], f["phrase"]) for f in findings] == [("superlative", "warning", "最高")]
    with platform_scope("test"):
        events = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "adcheck.rule.update")).all()
    assert {e.details["rule"] for e in events} == {"free_gift", "superlative"}
    assert all(e.actor_email == admin.email for e in events)
    client.post(
        f"/organizations/{organization.slug}/adcheck/free_gift", data={"csrf_token": csrf_token(client), "reset": "1"}
    )
    assert db.session.scalars(sa.select(AdRuleOverride.rule_id)).all() == ["superlative"]


def test_clinic_staff_and_other_organizations_cannot_change_the_rules(client):
    organization, other = gen_organization(), gen_organization()
    clinic = gen_clinic(organization)
    login(client, gen_user("owner", clinic=clinic))
    assert "法人のルール設定を編集" not in client.get(f"/c/{clinic.slug}/adcheck").get_data(as_text=True)
    assert client.get(f"/organizations/{organization.slug}/adcheck").status_code == 404
    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    login(client, gen_user("admin", organization=other))
    assert client.get(f"/organizations/{organization.slug}/adcheck").status_code == 404
    refused = client.post(
        f"/organizations/{organization.slug}/adcheck/superlative",
        data={"csrf_token": csrf_token(client), "severity": "warning"},
    )
    assert refused.status_code == 404
    assert db.session.scalar(sa.select(sa.func.count(AdRuleOverride.id))) == 0


def _save_rule(client, clinic, reply: str, **boxes):
    data = {"csrf_token": csrf_token(client), "name": "キャンペーン", "match_type": "contains",
            "keywords": "キャンペーン", "priority": "100", "enabled": "1", "reply": reply, **boxes}  # fmt: skip
    return client.post(f"/c/{clinic.slug}/autoreply/rules/new", data=data)


def _rules(clinic) -> list[AutoReplyRule]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return db.session.scalars(sa.select(AutoReplyRule)).all()


def test_an_faq_answer_with_a_warning_is_saved_only_once_acknowledged(client):
    clinic = gen_clinic()
    login(client, gen_user("sender", clinic=clinic))
    refused = _save_rule(client, clinic, "来院の方にプレゼントがあります")
    page = refused.get_data(as_text=True)
    assert refused.status_code == 200 and "景品・プレゼントによる誘引" in page and 'name="adcheck_ack"' in page
    assert _rules(clinic) == []
    assert _save_rule(client, clinic, "来院の方にプレゼントがあります", adcheck_ack="1").status_code == 302
    (rule,) = _rules(clinic)
    with platform_scope("test"):
        event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "adcheck.acknowledge")).one()
    assert event.target_id == str(rule.id) and event.details["findings"][0]["rule"] == "free_gift"


def test_an_faq_answer_with_a_block_needs_an_admin(client):
    clinic = gen_clinic()
    sender = gen_user("sender", clinic=clinic)
    login(client, sender)
    page = _save_rule(client, clinic, "初診料無料！", adcheck_approve="1").get_data(as_text=True)
    assert "管理者の承認が必要です" in page and _rules(clinic) == [], "a sender's approval box counts for nothing"
    client.post("/auth/logout", data={"csrf_token": csrf_token(client)})
    login(client, gen_user("admin", clinic=clinic))
    assert 'name="adcheck_approve"' in _save_rule(client, clinic, "初診料無料！").get_data(as_text=True)
    assert _save_rule(client, clinic, "初診料無料！", adcheck_approve="1").status_code == 302
    assert len(_rules(clinic)) == 1
    with platform_scope("test"):
        event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "adcheck.approve")).one()
    assert event.details["findings"][0]["rule"] == "insured_price"


def test_the_composer_faq_and_rich_menu_fields_carry_the_live_check(client):
    clinic = gen_clinic()
    login(client, gen_user("admin", clinic=clinic))
    for path in ("/messages/compose", "/deliveries/new", "/autoreply/rules/new", "/autoreply/settings"):
        page = client.get(f"/c/{clinic.slug}{path}").get_data(as_text=True)
        assert "data-adcheck" in page and f'data-adcheck-url="/c/{clinic.slug}/adcheck/check"' in page, path


def test_the_coupon_form_checks_its_texts_and_records_the_acknowledgement(client, sandbox, live_server):
    from saas.coupons.models import Coupon
    from tests.coupons.support import coupon_clinic

    clinic = coupon_clinic(sandbox, live_server)[0]
    login(client, gen_user("sender", clinic=clinic))
    form = client.get(f"/c/{clinic.slug}/coupons/new").get_data(as_text=True)
    assert 'id="description" name="description" rows="3" maxlength="1000" data-adcheck' in form
    data = {"csrf_token": csrf_token(client), "purpose": "self_pay", "service": "人間ドック",
            "title": "人間ドック 3,000円引き", "description": "ご来院の方にもれなくプレゼント",
            "reward_kind": "discount_yen", "reward_value": "3000", "starts_on": "2030-01-01",
            "ends_on": "2030-01-31", "per_patient_limit": "1", "target": "all"}  # fmt: skip
    refused = client.post(f"/c/{clinic.slug}/coupons/", data=data)
    assert refused.status_code == 400 and 'name="adcheck_ack"' in refused.get_data(as_text=True)
    with tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(Coupon)).all() == []
    assert client.post(f"/c/{clinic.slug}/coupons/", data={**data, "adcheck_ack": "1"}).status_code == 302
    with platform_scope("test"):
        event = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "adcheck.acknowledge")).one()
    assert event.target_type == "coupon" and event.details["findings"][0]["rule"] == "free_gift"


def test_a_step_message_with_a_block_phrase_is_saved_only_with_an_admins_approval(app, client, sandbox):
    from saas.steps.models import ScenarioStep
    from tests.delivery.support import connected_clinic
    from tests.steps.support import scenario

    clinic = connected_clinic(sandbox, "1760000001")
    scenario_id = scenario(clinic, "再診のご案内", [], status="draft")
    step = {"m0_type": "text", "m0_text": "再診料が無料になります", "delay_value": "1", "delay_unit": "days"}
    login(client, gen_user("sender", clinic=clinic))
    url = f"/c/{clinic.slug}/steps/{scenario_id}/steps/"
    refused = client.post(url, data={"csrf_token": csrf_token(client), **step, "adcheck_approve": "1"})
    assert refused.status_code == 422 and "管理者の承認が必要です" in refused.get_data(as_text=True)
    admin = app.test_client()
    login(admin, gen_user("admin", clinic=clinic))
    assert admin.post(url, data={"csrf_token": csrf_token(admin), **step, "adcheck_approve": "1"}).status_code == 302
    with tenant_scope(clinic.id):
        assert len(db.session.scalars(sa.select(ScenarioStep)).all()) == 1
