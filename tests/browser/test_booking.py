"""A patient books from LINE: booking page → sandbox LINE Login consent → slot → confirmation in LINE."""

from __future__ import annotations

import re

import pytest

from tests.booking.support import booking_clinic
from tests.webhooks.support import run_jobs

pytestmark = pytest.mark.browser


def test_a_patient_books_through_line_login_and_gets_the_confirmation_in_line(page, sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server, name="つなぐ小児科")
    sandbox.add_patient(channel, "小林 次郎")
    patient = sandbox.add_patient(channel, "高橋 美咲")
    sandbox.follow(channel, patient)
    run_jobs()

    page.goto(f"/book/{clinic.slug}/")
    page.wait_for_url(re.compile(r".*/oauth2/v2\.1/authorize.*"))
    page.get_by_label("高橋 美咲").check()
    page.get_by_role("button", name="許可する").click()
    page.wait_for_url(re.compile(rf".*/book/{clinic.slug}/.*"))
    assert page.get_by_text("高橋 美咲 さん").is_visible()

    first_slot = page.get_by_test_id("slot").first
    first_slot.click()
    chosen = page.get_by_test_id("confirm-when").inner_text()
    page.get_by_role("button", name="予約を確定する").click()
    assert page.get_by_test_id("booking-done").get_by_text("ご予約が確定しました").is_visible()

    run_jobs()
    inbox = sandbox.inbox(channel, patient)
    confirmation = inbox[-2]
    assert confirmation["via"] == "push"
    assert "ご予約が確定しました" in confirmation["message"]["text"]
    assert chosen.split(" ")[1][:5] in confirmation["message"]["text"]
    assert inbox[-1]["message"]["template"]["actions"][1]["data"].startswith("booking:cancel:")
