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
