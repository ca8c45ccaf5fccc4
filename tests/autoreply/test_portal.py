"""The rule editor and its test box, as staff use them."""

from __future__ import annotations

import re

from tests.factories import gen_clinic, gen_user
from tests.helpers import login


def test_staff_create_a_rule_and_the_test_box_shows_which_rule_answers(client):
    clinic = gen_clinic(parking="裏に3台")
    login(client, gen_user("admin", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/autoreply/rules/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    created = client.post(f"/c/{clinic.slug}/autoreply/rules/new",
                          data={"csrf_token": token, "name": "駐車場のご案内", "match_type": "contains",
                                "keywords": "駐車場\nちゅうしゃじょう", "priority": "120", "enabled": "1",
                                "computed": "parking", "reply": ["", "", ""]})  # fmt: skip
    assert created.status_code == 302
    assert "駐車場のご案内" in client.get(f"/c/{clinic.slug}/autoreply/").get_data(as_text=True)
    result = client.post(f"/c/{clinic.slug}/autoreply/test", data={"csrf_token": token, "text": "ﾁｭｳｼｬｼﾞｮｳ"},
                         headers={"HX-Request": "true"}).get_data(as_text=True)  # fmt: skip
    assert "駐車場のご案内" in result and "裏に3台" in result


def test_a_rule_without_keywords_is_refused_with_a_reason(client):
    clinic = gen_clinic()
    login(client, gen_user("admin", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/autoreply/rules/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(f"/c/{clinic.slug}/autoreply/rules/new",
                           data={"csrf_token": token, "name": "x", "keywords": "", "reply": ["hi"]})  # fmt: skip
    assert response.status_code == 200
    assert "キーワードを1つ以上入力してください" in response.get_data(as_text=True)


def test_resuming_the_bot_clears_the_urgent_flag_is_audited_and_an_unknown_chat_is_404(client):
    from saas.audit.models import AuditEvent
    from saas.autoreply import services
    from saas.extensions import db
    from saas.friends.models import Friend
    from saas.tenancy.scoping import tenant_scope

    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        friend = Friend(line_user_id="U-urgent", display_name="患者", attributes={})
        db.session.add(friend)
        services.flag_urgent(clinic.id, "U-urgent")
        db.session.commit()
        friend_id = friend.id
    login(client, gen_user("admin", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/autoreply/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)

    unknown = client.post(f"/c/{clinic.slug}/autoreply/conversations/U-nobody/resume", data={"csrf_token": token})
    assert unknown.status_code == 404
    resumed = client.post(f"/c/{clinic.slug}/autoreply/conversations/U-urgent/resume", data={"csrf_token": token})
    assert resumed.status_code == 302

    db.session.expire_all()
    with tenant_scope(clinic.id):
        assert services.get_state(clinic.id, "U-urgent").urgent_at is None
        actions = [(e.action, e.target_id) for e in db.session.query(AuditEvent).filter_by(clinic_id=clinic.id)]
    assert ("autoreply.resume", str(friend_id)) in actions
    assert "自動応答を再開" in client.get(f"/c/{clinic.slug}/audit/").get_data(as_text=True)


def test_a_rule_keeps_the_priority_typed_zero_and_full_width_digits_included(client):
    from saas.autoreply.models import AutoReplyRule
    from saas.extensions import db
    from saas.tenancy.scoping import tenant_scope

    clinic = gen_clinic()
    login(client, gen_user("admin", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/autoreply/rules/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    for name, typed in (("最後に答える", "0"), ("全角で入力", "１２"), ("空欄", "")):
        created = client.post(f"/c/{clinic.slug}/autoreply/rules/new",
                              data={"csrf_token": token, "name": name, "match_type": "contains", "keywords": name,
                                    "priority": typed, "enabled": "1", "reply": ["はい"]})  # fmt: skip
        assert created.status_code == 302
    with tenant_scope(clinic.id):
        priorities = dict(db.session.execute(db.select(AutoReplyRule.name, AutoReplyRule.priority)).all())
    assert priorities == {"最後に答える": 0, "全角で入力": 12, "空欄": 100}
