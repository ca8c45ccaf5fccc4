"""The contract validator itself: it must catch drift, or it proves nothing.

Every check runs on line-bot-sdk's generated code alone (LINE_OPENAPI_DIR unset, as on a user's
machine) and, where LINE_OPENAPI_DIR is set (CI), with LINE's OpenAPI files as well.
"""

from __future__ import annotations

import os

import pytest
from linebot.v3.messaging import PushMessageRequest, TextMessage

from saas.sandbox import openapi
from saas.sandbox.contract import ContractError, find_operation, validate_request, validate_response, validate_webhook

TEXT_EVENT = {
    "type": "message",
    "mode": "active",
    "timestamp": 1,
    "source": {"type": "user", "userId": "U" + "0" * 32},
    "webhookEventId": "01HZZZZZZZZZZZZZZZZZZZZZZZ",
    "deliveryContext": {"isRedelivery": False},
    "message": {"type": "text", "id": "1", "text": "hi"},
}


@pytest.fixture(autouse=True, params=["line-bot-sdk", "line-bot-sdk and OpenAPI files"])
def contract_sources(request, monkeypatch):
    """Run each test with LINE_OPENAPI_DIR unset, then (where CI set it) with the OpenAPI files."""
    if request.param == "line-bot-sdk":
        monkeypatch.delenv("LINE_OPENAPI_DIR", raising=False)
    elif not os.environ.get("LINE_OPENAPI_DIR"):
        pytest.skip("LINE_OPENAPI_DIR is not set (CI points it at LINE's OpenAPI files)")
    return request.param


def test_a_bot_info_answer_missing_required_fields_is_drift():
    with pytest.raises(ContractError, match="basicId"):
        validate_response("GET", "/v2/bot/info", 200, {"userId": "U" + "0" * 32, "displayName": "x"})


def test_a_field_of_the_wrong_type_is_drift():
    with pytest.raises(ContractError, match="totalUsage"):
        validate_response("GET", "/v2/bot/message/quota/consumption", 200, {"totalUsage": "many"})
    validate_response("GET", "/v2/bot/message/quota/consumption", 200, {"totalUsage": 3})


def test_an_undeclared_status_is_drift():
    with pytest.raises(ContractError, match="does not declare"):
        validate_response("GET", "/v2/bot/message/quota", 202, {"type": "none"})


def test_error_answers_must_be_error_responses():
    validate_response(
        "POST", "/v2/bot/message/push", 400, {"message": "bad", "details": [{"message": "m", "property": "p"}]}
    )
    with pytest.raises(ContractError):
        validate_response("GET", "/v2/bot/profile/U1", 404, {"error": "no message"})
    with pytest.raises(ContractError, match="ErrorResponse"):
        validate_response("GET", "/v2/bot/profile/U1", 404, None)


def test_webhook_events_are_checked_by_their_type():
    event = {**TEXT_EVENT, "message": dict(TEXT_EVENT["message"])}
    with pytest.raises(ContractError, match="quoteToken"):
        validate_webhook({"destination": "U" + "0" * 32, "events": [event]})
    event["message"]["quoteToken"] = "q"
    validate_webhook({"destination": "U" + "0" * 32, "events": [event]})
    with pytest.raises(ContractError):
        validate_webhook({"destination": "U" + "0" * 32, "events": [{**event, "type": "no-such-event"}]})


def test_request_bodies_are_checked_against_the_request_model():
    body = PushMessageRequest(to="U" + "0" * 32, messages=[TextMessage(text="こんにちは")]).to_dict()
    assert validate_request("POST", "/v2/bot/message/push", body) == "push_message"
    with pytest.raises(ContractError, match="to"):
        validate_request("POST", "/v2/bot/message/push", {"messages": body["messages"]})


def test_literal_paths_win_over_templates():
    assert find_operation("GET", "/v2/bot/richmenu/list").name == "get_rich_menu_list"
    assert find_operation("GET", "/v2/bot/richmenu/richmenu-abc").name == "get_rich_menu"
    with pytest.raises(ContractError, match="not an operation"):
        find_operation("GET", "/v2/bot/no-such-thing")


def test_sandbox_answers_pass_the_contract_of_this_machine(messaging, friend, sandbox, channel, contract_sources):
    """The suite's own contract checks (the api_client fixture validates every answer) with this test's sources."""
    messaging.push_message(PushMessageRequest(to=friend, messages=[TextMessage(text="お知らせです")]))
    messaging.get_bot_info()
    messaging.get_message_quota()
    checked = {
        validate_response(e["method"], e["path"], e["status"], e["response"]) for e in sandbox.requests(channel["id"])
    }
    assert {"push_message", "get_bot_info", "get_message_quota"} <= checked
    if contract_sources == "line-bot-sdk":
        assert openapi.spec_dir() is None  # nothing outside the repository was read


def test_a_wrong_openapi_folder_is_an_error_not_a_silent_skip(monkeypatch, tmp_path, contract_sources):
    if contract_sources != "line-bot-sdk":
        pytest.skip("once is enough")
    monkeypatch.setenv("LINE_OPENAPI_DIR", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="messaging-api.yml"):
        validate_response("GET", "/v2/bot/message/quota/consumption", 200, {"totalUsage": 1})
