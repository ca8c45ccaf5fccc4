"""Patients' data rights (export as JSON/CSV, erasure keeping counts) and sensitive-data settings."""

from __future__ import annotations

import csv
import io
import json

import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.extensions import db
from saas.friends import services as friend_services
from saas.friends.models import Friend, Message
from saas.privacy.models import PrivacySettings
from saas.privacy.sensitive import detector_for
from saas.tenancy.scoping import tenant_scope
from saas.webhooks.models import WebhookEvent
from tests.factories import gen_clinic, gen_user
from tests.helpers import assert_rows_isolated, login
from tests.inbox.support import friend_of, patient_writes, post


def _audit(action: str) -> list[AuditEvent]:
    db.session.expire_all()
    return list(db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == action)))


def _patient_with_history(sandbox, live_server, client):
    from tests.webhooks.support import connect_clinic

    clinic, channel = connect_clinic(sandbox, live_server)
    login(client, gen_user("owner", clinic=clinic))
    patient = patient_writes(sandbox, channel, "佐藤 花子", "予約したいです", "腰が痛みます")
    with tenant_scope(clinic.id):
        friend = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == patient))
        friend_services.add_tag(friend, friend_services.get_or_create_tag("初診"))
        friend.attributes = {"来院経路": "ホームページ"}
        db.session.commit()
    return clinic, channel, patient, friend_of(clinic, patient)


def test_a_friend_export_holds_profile_tags_attributes_messages_and_events(sandbox, live_server, client):
    clinic, _, patient, friend = _patient_with_history(sandbox, live_server, client)
    response = client.get(f"/c/{clinic.slug}/privacy/friends/{friend.id}/export.json")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    data = json.loads(response.data)
    assert data["profile"]["display_name"] == "佐藤 花子" and data["profile"]["line_user_id"] == patient
    assert data["tags"] == ["初診"] and data["attributes"] == {"来院経路": "ホームページ"}
    assert [m["text"] for m in data["messages"] if m["direction"] == "in"] == ["予約したいです", "腰が痛みます"]
    assert {e["type"] for e in data["events"]} == {"follow", "message"}

    response = client.get(f"/c/{clinic.slug}/privacy/friends/{friend.id}/export.csv")
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert any(r["section"] == "profile" and r["key"] == "display_name" and r["value"] == "佐藤 花子" for r in rows)
    assert [r["value"] for r in rows if r["section"] == "message" and r["direction"] == "in"] == [
        "予約したいです",
        "腰が痛みます",
    ]
    assert any(r["section"] == "tag" and r["value"] == "初診" for r in rows)
    assert sum(r["section"] == "event" for r in rows) == len(data["events"])
    exports = _audit("friends.export")
    assert sorted(e.details["format"] for e in exports) == ["csv", "json"]
    assert all(e.clinic_id == clinic.id and e.target_id == str(friend.id) for e in exports)


def test_erasure_removes_messages_and_profile_but_keeps_the_count(sandbox, live_server, client):
    clinic, _, patient, friend = _patient_with_history(sandbox, live_server, client)
    url = f"/c/{clinic.slug}/privacy/friends/{friend.id}/erase"
    post(client, url, {"confirmation": "はい"})
    assert friend_of(clinic, patient).display_name == "佐藤 花子", "a wrong confirmation erases nothing"

    assert post(client, url, {"confirmation": "削除"}).status_code == 302
    db.session.expire_all()
    with tenant_scope(clinic.id):
        erased = db.session.get(Friend, friend.id)
        assert erased.status == "erased" and erased.display_name == "（削除済み）"
        assert erased.picture_url is None and erased.attributes == {} and erased.line_user_id != patient
        assert db.session.scalar(sa.select(sa.func.count(Message.id))) == 0
        assert (
            db.session.scalar(sa.select(sa.func.count(WebhookEvent.id)).where(WebhookEvent.line_user_id == patient))
            == 0
        )
        assert db.session.scalar(sa.select(sa.func.count(Friend.id))) == 1, "the tombstone keeps the statistics"
        assert erased.followed_at is not None and erased.tags == []
    (event,) = _audit("friends.erase")
    assert event.target_id == str(friend.id) and event.details["removed"]["messages"] >= 2
    assert "佐藤" not in json.dumps(event.details, ensure_ascii=False)
    assert "佐藤 花子" not in client.get(f"/c/{clinic.slug}/friends/{friend.id}").get_data(as_text=True)
    assert client.get(f"/c/{clinic.slug}/inbox/{friend.id}").status_code == 404


def test_export_and_erasure_need_the_export_permission_and_stay_in_the_clinic(sandbox, live_server, client):
    clinic, _, _, friend = _patient_with_history(sandbox, live_server, client)
    other = gen_clinic(name="他院")
    login(client, gen_user("owner", clinic=other))
    assert client.get(f"/c/{other.slug}/privacy/friends/{friend.id}/export.json").status_code == 404
    assert client.get(f"/c/{clinic.slug}/privacy/friends/{friend.id}/export.json").status_code == 404
    login(client, gen_user("responder", clinic=clinic))
    assert client.get(f"/c/{clinic.slug}/privacy/friends/{friend.id}/export.json").status_code == 403
    assert (
        post(client, f"/c/{clinic.slug}/privacy/friends/{friend.id}/erase", {"confirmation": "削除"}).status_code == 403
    )
    assert _audit("friends.export") == [] and _audit("friends.erase") == []


def test_sensitive_patterns_and_the_privacy_note_are_configurable_per_clinic(client):
    clinic, other = gen_clinic(), gen_clinic()
    login(client, gen_user("admin", clinic=clinic))
    url = f"/c/{clinic.slug}/privacy/settings"
    assert "マイナンバー（12桁）" in client.get(url).get_data(as_text=True)
    bad = post(client, url, {"patterns": "壊れた: ([", "keywords": "", "privacy_note": ""})
    assert bad.status_code == 422 and "正規表現が正しくありません" in bad.get_data(as_text=True)
    post(
        client,
        url,
        {"patterns": "診察券番号: 診察券\\D{0,4}\\d{6}", "keywords": "花粉症", "privacy_note": "当院の注意書き"},
    )
    with tenant_scope(clinic.id):
        detector = detector_for(clinic.id)
    assert detector.findings("診察券 123456 です") == ["診察券番号"]
    assert detector.findings("花粉症です") == ["病名・診療内容"] and detector.privacy_note == "当院の注意書き"
    assert detector.findings("1234 5678 9012") == [], "the clinic replaced the defaults"
    with tenant_scope(other.id):
        assert detector_for(other.id).findings("１２３４５６７８９０１２") == ["マイナンバー（12桁）"]
        db.session.add(PrivacySettings(patterns=[], keywords=[], privacy_note=""))
        db.session.commit()
    assert _audit("privacy.settings")
    with tenant_scope([clinic.id, other.id]):
        rows = {row.clinic_id: row for row in db.session.scalars(sa.select(PrivacySettings))}
    assert_rows_isolated(PrivacySettings, rows[clinic.id], rows[other.id])


def test_default_detection_covers_insurance_numbers_birth_dates_and_diagnoses():
    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        detector = detector_for(clinic.id)
    assert "保険証の番号" in detector.findings("保険証の記号は12番号3456です")
    assert "生年月日" in detector.findings("昭和55年4月1日生まれです")
    assert "病名・診療内容" in detector.findings("うつ病と診断されました")
    assert detector.findings("明日10時に伺います") == []
