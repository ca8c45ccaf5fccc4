"""The OpenAPI contract validator itself: it must catch drift, or it proves nothing."""

from __future__ import annotations

import pytest

from saas.sandbox.contract import ContractError, find_operation, validate_response, validate_webhook


def test_a_bot_info_answer_missing_required_fields_is_drift():
    with pytest.raises(ContractError, match="basicId"):
        validate_response("GET", "/v2/bot/info", 200, {"userId": "U" + "0" * 32, "displayName": "x"})


def test_an_undeclared_status_is_drift():
    with pytest.raises(ContractError, match="does not declare"):
        validate_response("GET", "/v2/bot/message/quota", 202, {"type": "none"})


def test_error_answers_must_be_error_responses():
    validate_response(
        "POST", "/v2/bot/message/push", 400, {"message": "bad", "details": [{"message": "m", "property": "p"}]}
    )
    with pytest.raises(ContractError):
        validate_response("GET", "/v2/bot/profile/U1", 404, {"error": "no message"})


def test_webhook_events_are_checked_by_their_type():
    event = {
        "type": "message",
        "mode": "active",
        "timestamp": 1,
        "source": {"type": "user", "userId": "U" + "0" * 32},
        "webhookEventId": "01HZZZZZZZZZZZZZZZZZZZZZZZ",
        "deliveryContext": {"isRedelivery": False},
        "message": {"type": "text", "id": "1", "text": "hi"},
    }
    with pytest.raises(ContractError, match="quoteToken"):
        validate_webhook({"destination": "U" + "0" * 32, "events": [event]})
    event["message"]["quoteToken"] = "q"
    validate_webhook({"destination": "U" + "0" * 32, "events": [event]})


def test_literal_paths_win_over_templates():
    assert find_operation("GET", "/v2/bot/richmenu/list")[2]["operationId"] == "getRichMenuList"
    assert find_operation("GET", "/v2/bot/richmenu/richmenu-abc")[2]["operationId"] == "getRichMenu"
