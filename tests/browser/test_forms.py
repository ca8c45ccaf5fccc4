"""A patient answers a form in the browser: form link → sandbox LINE Login consent → the form on a
phone-sized page → the answers set a friend field and a tag, and the segment count changes."""

from __future__ import annotations

import re

import pytest

from saas.delivery import audience
from saas.fields import services as fields
from saas.tenancy.scoping import tenant_scope
from tests.forms.support import build_form, form_clinic, friend_of

pytestmark = pytest.mark.browser


def test_a_patient_answers_a_form_from_line_and_lands_in_the_answered_segment(page, client, sandbox, live_server):
    clinic, _channel, patient = form_clinic(sandbox, live_server, name="つなぐ小児科")
    form = build_form(client, clinic)
    segment = {"answered_form_ids": [form.id]}
    with tenant_scope(clinic.id):
        assert audience.count_audience("segment", segment).matched == 0

    page.set_viewport_size({"width": 390, "height": 844})  # a phone, as inside LINE
    page.goto(f"/forms/{clinic.slug}/{form.token}")
    page.wait_for_url(re.compile(r".*/oauth2/v2\.1/authorize.*"))
    page.get_by_label("高橋 美咲").check()
    page.get_by_role("button", name="許可する").click()
    page.wait_for_url(re.compile(rf".*/forms/{clinic.slug}/{form.token}$"))
    assert page.get_by_role("heading", name="予防接種の希望").is_visible()

    page.get_by_role("button", name="送信する").click()  # nothing chosen: the required question says so
    assert page.get_by_test_id("question-q1").get_by_text("この項目は必須です").is_visible()
    page.get_by_label("インフルエンザ").check()
    page.get_by_label("40代").check()
    page.get_by_label("服用中のお薬").fill("なし")
    page.get_by_label("前回のご来院日").fill("2025-11-20")
    page.get_by_test_id("question-q5").get_by_label("同意する").check()
    page.get_by_role("button", name="送信する").click()
    assert page.get_by_test_id("form-done").get_by_text("ご案内をお待ちください").is_visible()

    with tenant_scope(clinic.id):
        friend = friend_of(clinic, patient)
        assert fields.values_by_key(friend)["age_band"] == "40代"
        assert [tag.name for tag in friend.tags] == ["インフル希望"]
        assert audience.count_audience("segment", segment).matched == 1
