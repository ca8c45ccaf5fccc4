"""Clinic-defined friend fields: defined on their page, edited on the friend page, used by
segments (live count and send) and by templates ({{friend.fields.x}})."""

from __future__ import annotations

import re
from datetime import date

import pytest
import sqlalchemy as sa

from saas.delivery import audience
from saas.extensions import db
from saas.fields import services
from saas.fields.models import FriendField, FriendFieldValue
from saas.friends.models import Friend
from saas.messaging.variables import check_variables, group_recipients_by_rendering
from saas.tenancy.scoping import tenant_scope
from tests.conftest import csrf_token
from tests.delivery.support import add_friends, connected_clinic
from tests.factories import gen_clinic, gen_user
from tests.helpers import login


def _field(key, label, kind, choices=()) -> FriendField:
    field = services.save_field(FriendField(), key=key, label=label, kind=kind, choices=list(choices))
    db.session.commit()
    return field


def _friends(clinic) -> list[Friend]:
    return list(db.session.scalars(sa.select(Friend).order_by(Friend.id)))


def test_values_are_typed_and_a_bad_value_writes_nothing(as_platform):
    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        db.session.add(Friend(line_user_id="U" + "1" * 32, attributes={}))
        db.session.commit()
        friend = _friends(clinic)[0]
        visit = _field("last_visit", "最終来院日", "date")
        interests = _field("interests", "関心のある診療", "multi_choice", ["内科", "小児科", "皮膚科"])
        services.set_value(friend, visit, "2025/04/01")
        services.set_value(friend, interests, ["内科", "皮膚科"])
        db.session.commit()
        assert services.values_by_key(friend) == {"last_visit": "2025-04-01", "interests": "内科、皮膚科"}
        with pytest.raises(services.FieldProblem):
            services.set_value(friend, interests, ["内科", "歯科"])  # not a choice
        with pytest.raises(services.FieldProblem):
            services.set_value(friend, visit, "来週")
        assert services.values_by_key(friend)["interests"] == "内科、皮膚科"
        assert db.session.scalar(sa.select(FriendFieldValue.day).where(FriendFieldValue.field_id == visit.id)) == date(
            2025, 4, 1
        )


def test_segment_conditions_on_fields_count_the_right_friends(sandbox, as_platform):
    clinic = connected_clinic(sandbox, "1700009001")
    add_friends(sandbox, clinic, 6)
    with tenant_scope(clinic.id):
        age = _field("age_band", "年代", "choice", ["20代", "30代", "40代"])
        visit = _field("last_visit", "最終来院日", "date")
        card = _field("card_no", "診察券番号", "number")
        friends = _friends(clinic)
        for friend, band, day in zip(
            friends, ["30代", "30代", "30代", "40代", "20代", "30代"], range(1, 7), strict=True
        ):
            friend.consent_marketing = True
            services.set_value(friend, age, band)
            services.set_value(friend, visit, f"2025-0{day}-01")
            services.set_value(friend, card, str(1000 + day))
        db.session.commit()

        def eligible(*conditions) -> int:
            return audience.count_audience("segment", {"fields": list(conditions)}).eligible

        assert eligible({"field_id": age.id, "op": "eq", "value": "30代"}) == 4
        assert (
            eligible(
                {"field_id": age.id, "op": "eq", "value": "30代"},
                {"field_id": visit.id, "op": "on_or_after", "value": "2025-03-01"},
            )
            == 2
        )
        assert eligible({"field_id": card.id, "op": "gte", "value": "1005"}) == 2
        assert eligible({"field_id": 99999, "op": "eq", "value": "x"}) == 0


def test_the_friend_page_edits_fields_and_the_segment_form_offers_them(client, sandbox, as_platform):
    clinic = connected_clinic(sandbox, "1700009002")
    add_friends(sandbox, clinic, 3)
    with tenant_scope(clinic.id):
        age = _field("age_band", "年代", "choice", ["30代", "40代"])
        kids = _field("kids", "子育て中", "choice", ["はい", "いいえ"])
        friend_id = _friends(clinic)[0].id
        for friend in _friends(clinic):
            friend.consent_marketing = True
        db.session.commit()
    login(client, gen_user("sender", clinic=clinic))
    token = csrf_token(client)
    page = client.get(f"/c/{clinic.slug}/friends/{friend_id}").get_data(as_text=True)
    assert "年代" in page and "子育て中" in page
    bad = client.post(
        f"/c/{clinic.slug}/fields/friend/{friend_id}",
        data={"csrf_token": token, f"field_{age.id}": "30代", f"field_{kids.id}": "たぶん"},
    )
    assert bad.status_code == 302
    with tenant_scope(clinic.id):
        assert services.values_by_key(db.session.get(Friend, friend_id)) == {}, "nothing half-applied"
    client.post(
        f"/c/{clinic.slug}/fields/friend/{friend_id}",
        data={"csrf_token": token, f"field_{age.id}": "30代", f"field_{kids.id}": "はい"},
    )
    with tenant_scope(clinic.id):
        assert services.values_by_key(db.session.get(Friend, friend_id)) == {"age_band": "30代", "kids": "はい"}

    form = client.get(f"/c/{clinic.slug}/deliveries/new").get_data(as_text=True)
    assert 'name="field_id"' in form and "子育て中" in form and 'name="attr_key"' not in form
    count = client.post(
        f"/c/{clinic.slug}/deliveries/count",
        data={
            "csrf_token": token,
            "audience": "segment",
            "field_id": [str(kids.id)],
            "field_op": ["eq"],
            "field_value": ["はい"],
        },
    ).get_data(as_text=True)
    assert 'data-eligible="1"' in count


def test_templates_use_friend_fields_per_recipient(sandbox, as_platform):
    clinic = connected_clinic(sandbox, "1700009003")
    add_friends(sandbox, clinic, 3)
    with tenant_scope(clinic.id):
        card = _field("card_no", "診察券番号", "text")
        friends = _friends(clinic)
        services.set_value(friends[0], card, "A-001")
        services.set_value(friends[1], card, "A-002")
        db.session.commit()
        template = [{"type": "text", "text": "診察券番号 {{friend.fields.card_no}} の方へ"}]
        assert check_variables(template) == []
        groups = group_recipients_by_rendering(template, clinic, friends)
        texts = sorted(group.messages[0]["text"] for group in groups)
    assert texts == ["診察券番号  の方へ", "診察券番号 A-001 の方へ", "診察券番号 A-002 の方へ"]
    assert check_variables([{"type": "text", "text": "{{friend.fields.Bad-Key}}"}])


def test_field_pages_define_fields_and_another_clinics_field_is_404(client, as_platform):
    clinic, other = gen_clinic(), gen_clinic(name="別院")
    with tenant_scope(other.id):
        theirs = _field("secret", "よその項目", "text")
    login(client, gen_user("admin", clinic=clinic))
    token = csrf_token(client)
    created = client.post(
        f"/c/{clinic.slug}/fields/",
        data={"csrf_token": token, "key": "age_band", "label": "年代", "kind": "choice", "choices": "20代、30代"},
    )
    assert created.status_code == 302
    refused = client.post(
        f"/c/{clinic.slug}/fields/", data={"csrf_token": token, "key": "Age", "label": "x", "kind": "text"}
    )
    assert refused.status_code == 400
    listing = client.get(f"/c/{clinic.slug}/fields/").get_data(as_text=True)
    assert "年代" in listing and "{{friend.fields.age_band}}" in listing and "よその項目" not in listing
    assert client.get(f"/c/{clinic.slug}/fields/{theirs.id}").status_code == 404
    assert client.post(f"/c/{clinic.slug}/fields/{theirs.id}/delete", data={"csrf_token": token}).status_code == 404


def test_erasure_removes_field_values_and_consent_history_and_export_includes_them(as_platform):
    from saas.friends import consent
    from saas.friends.models import ConsentChange
    from saas.privacy import services as privacy
    from saas.sources.models import InflowSource, SourceScan

    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        friend = Friend(line_user_id="U" + "7" * 32, attributes={})
        source = InflowSource(name="ポスター", tag_ids=[])
        db.session.add_all([friend, source])
        db.session.flush()
        db.session.add(SourceScan(source_id=source.id, line_user_id=friend.line_user_id, friend_id=friend.id))
        card = _field("card_no", "診察券番号", "text")
        services.set_value(friend, card, "A-123")
        consent.change(friend, "marketing", True, by="patient")
        db.session.commit()
        exported = privacy.export_data(friend)
        assert exported["attributes"] == {"field:card_no": "A-123"}
        assert [c["granted"] for c in exported["consent_changes"]] == [True]
        privacy.erase(friend)
        db.session.commit()
        assert db.session.scalar(sa.select(sa.func.count(FriendFieldValue.id))) == 0
        assert db.session.scalar(sa.select(sa.func.count(ConsentChange.id))) == 0
        assert db.session.scalar(sa.select(SourceScan.line_user_id)).startswith("erased:")


def test_the_segment_operators_read_in_the_portals_language(client, as_platform):
    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        _field("age_band", "年代", "choice", ["30代", "40代"])
    login(client, gen_user("sender", clinic=clinic))
    operators = {}
    for lang in ("ja", "en"):
        client.get(f"/language/{lang}")
        form = client.get(f"/c/{clinic.slug}/deliveries/new").get_data(as_text=True)
        row = form.split('name="field_op"')[1].split("</select>")[0]
        operators[lang] = dict(re.findall(r'<option value="(\w+)"[^>]*>([^<]+)</option>', row))
    assert operators["ja"]["gte"] == "以上" and operators["ja"]["contains"] == "を含む"
    assert operators["en"]["gte"] == "at least" and operators["en"]["contains"] == "contains"
    assert operators["en"]["on_or_before"] == "on or before" and operators["en"]["before_days"] == "or more days ago"
