"""Changes to LINE credentials, FAQ rules, schedules, rich menus and plans are audited with
before/after values; secrets never reach the log (issue 10 item 12, GL 6.0 §17)."""

from __future__ import annotations

import json

import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.extensions import db
from saas.quota.plans import set_clinic_plan
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import tenant_scope
from tests.factories import gen_clinic, gen_user
from tests.helpers import login
from tests.inbox.support import post


def _events(prefix: str) -> list[AuditEvent]:
    db.session.expire_all()
    statement = sa.select(AuditEvent).where(AuditEvent.action.startswith(prefix)).order_by(AuditEvent.id)
    return list(db.session.scalars(statement))


def _signed_in_owner(client):
    clinic = gen_clinic()
    owner = gen_user("owner", clinic=clinic)
    login(client, owner)
    return clinic, owner


def test_faq_rule_create_change_and_delete_are_audited_with_before_and_after(client):
    clinic, owner = _signed_in_owner(client)
    form = {
        "name": "診療時間",
        "match_type": "contains",
        "keywords": "診療時間",
        "reply": "9時からです",
        "priority": "100",
    }
    assert post(client, f"/c/{clinic.slug}/autoreply/rules/new", form).status_code == 302
    (created,) = _events("autoreply.rule.create")
    assert created.details["changes"]["keywords"] == {"before": None, "after": ["診療時間"]}
    assert created.actor_user_id == owner.id and created.clinic_id == clinic.id
    rule_url = f"/c/{clinic.slug}/autoreply/rules/{created.target_id}"
    post(client, rule_url, {**form, "keywords": "診療時間\n受付時間", "enabled": "1"})
    (changed,) = _events("autoreply.rule.update")
    assert changed.details["changes"]["keywords"] == {"before": ["診療時間"], "after": ["診療時間", "受付時間"]}
    assert "name" not in changed.details["changes"], "only what changed is listed"
    post(client, f"{rule_url}/delete", {})
    (deleted,) = _events("autoreply.rule.delete")
    assert deleted.details["changes"]["name"] == {"before": "診療時間", "after": None}


def test_a_closure_is_audited_with_its_dates(client):
    clinic, _owner = _signed_in_owner(client)
    form = {"kind": "closed", "starts_on": "2030-01-02", "ends_on": "2030-01-03", "reason": "年始休診"}
    assert post(client, f"/c/{clinic.slug}/schedule/closures/new", form).status_code == 302
    (created,) = _events("schedule.closure.create")
    assert created.details["changes"]["starts_on"]["after"] == "2030-01-02"
    assert created.details["changes"]["reason"]["after"] == "年始休診"


def test_line_credentials_changes_are_audited_without_the_secrets():
    clinic = gen_clinic()
    secret, token = "s3cr3t" + "x" * 26, "t0k3n-" + "y" * 40
    stored = db.session.get(Clinic, clinic.id)
    stored.line_channel_id, stored.line_channel_secret, stored.line_access_token = "2000012345", secret, token
    db.session.commit()
    stored.line_access_token = "t0k3n-" + "z" * 40
    db.session.commit()
    events = _events("line.credentials")
    assert [e.action for e in events] == ["line.credentials.update", "line.credentials.update"]
    first, second = (e.details["changes"] for e in events)
    assert first["line_channel_id"] == {"before": None, "after": "2000012345"}
    assert first["line_channel_secret"] == {"before": "(empty)", "after": "(set)"}
    assert second == {"line_access_token": {"before": "(set)", "after": "(replaced)"}}
    logged = json.dumps([e.details for e in events])
    assert secret not in logged and token not in logged and "z" * 40 not in logged


def test_a_plan_change_is_audited_with_the_old_and_new_plan():
    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        set_clinic_plan(clinic.id, "light")
        set_clinic_plan(clinic.id, "standard", extra_allowed=True)
    created, changed = _events("plan.")
    assert created.action == "plan.create" and changed.action == "plan.update"
    assert changed.clinic_id == clinic.id
    assert {"before": False, "after": True} in changed.details["changes"].values()
