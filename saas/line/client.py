"""A per-clinic Messaging API client and the small facade the rest of the product uses.

Functions take a ``clinic`` (anything with ``line_access_token``: a Clinic row, or a
:class:`Channel` during onboarding before anything is stored) and LINE message objects as
plain dicts (LINE's JSON shape). They return small dataclasses and raise
:mod:`saas.line.errors` exceptions, never the SDK's.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import urllib3
from flask import current_app
from linebot.v3.messaging import (
    ApiClient,
    ApiException,
    Configuration,
    MessagingApi,
    MessagingApiBlob,
    MulticastRequest,
    PushMessageRequest,
    ReplyMessageRequest,
    SetWebhookEndpointRequest,
    TestWebhookEndpointRequest,
)
from pydantic import v1 as pydantic

from saas.line.errors import LineRequestRejected, LineServerError, translate

# (connect, read) seconds: LINE answers in well under a second; a hung call must not pin a worker.
REQUEST_TIMEOUT = (5, 15)
_MAX_CACHED_CLIENTS = 256
# Connections kept per (host, token). The SDK keeps 5 per CPU (10 here): a webhook batch with 200
# replies in flight opened and discarded 190 TCP connections per batch, on both ends of the wire.
CONNECTIONS_PER_CLIENT = 256

_clients: dict[tuple[str, str], ApiClient] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class Channel:
    """Credentials not yet stored on a clinic (onboarding verifies them first)."""

    line_access_token: str


@dataclass(frozen=True)
class Sent:
    request_id: str | None
    message_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Profile:
    user_id: str
    display_name: str
    picture_url: str | None = None
    language: str | None = None
    status_message: str | None = None


@dataclass(frozen=True)
class BotInfo:
    user_id: str
    basic_id: str
    display_name: str
    picture_url: str | None = None


@dataclass(frozen=True)
class WebhookTest:
    success: bool
    status_code: int | None
    reason: str
    detail: str


def _api_client(host: str, token: str) -> ApiClient:
    """One pooled ApiClient per (host, token): connection reuse without sharing credentials."""
    key = (host, token)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if len(_clients) >= _MAX_CACHED_CLIENTS:
                _clients.clear()
            configuration = Configuration(host=host, access_token=token)
            configuration.connection_pool_maxsize = CONNECTIONS_PER_CLIENT
            client = ApiClient(configuration)
            _clients[key] = client
        return client


def messaging_api(clinic) -> MessagingApi:
    """The SDK's MessagingApi for this clinic's channel, on ``LINE_API_BASE``."""
    return MessagingApi(_api_client(current_app.config["LINE_API_BASE"], _token(clinic)))


def blob_api(clinic) -> MessagingApiBlob:
    """The SDK's MessagingApiBlob (content host) for this clinic, on ``LINE_DATA_API_BASE``."""
    return MessagingApiBlob(_api_client(current_app.config["LINE_DATA_API_BASE"], _token(clinic)))


def _token(clinic) -> str:
    token = getattr(clinic, "line_access_token", None)
    if not token:
        raise LineServerError("this clinic has no LINE channel access token", status=None)
    return token


@contextmanager
def _translated():
    try:
        yield
    except ApiException as exc:
        raise translate(exc) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise LineServerError(f"LINE could not be reached: {type(exc).__name__}") from exc
    except (pydantic.ValidationError, ValueError) as exc:  # the SDK checks shapes before sending
        raise LineRequestRejected(f"invalid request: {exc}", status=None) from exc


def _call(method: Callable, *args, **kwargs):
    with _translated():
        return method(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)


def _header(headers, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value
    return None


def _sent(response) -> Sent:
    data = response.data
    ids = [m.id for m in (getattr(data, "sent_messages", None) or [])]
    return Sent(request_id=_header(response.headers, "x-line-request-id"), message_ids=ids)


def reply(clinic, reply_token: str, messages: list[dict]) -> Sent:
    """Answer an event with its reply token (free of charge; valid once, for a short time)."""
    with _translated():
        request = ReplyMessageRequest.from_dict({"replyToken": reply_token, "messages": messages})
    return _sent(_call(messaging_api(clinic).reply_message_with_http_info, request))


def _with_unit(body: dict, unit: str | None) -> dict:
    return {**body, "customAggregationUnits": [unit]} if unit else body


def push(clinic, user_id: str, messages: list[dict], retry_key: str, unit: str | None = None) -> Sent:
    """Send to one friend. ``retry_key`` (a UUID kept by the caller) makes retries safe; ``unit``
    names the aggregation unit LINE counts its statistics under (saas.insights.units)."""
    with _translated():
        request = PushMessageRequest.from_dict(_with_unit({"to": user_id, "messages": messages}, unit))
    api = messaging_api(clinic)
    return _sent(_call(api.push_message_with_http_info, request, x_line_retry_key=retry_key))


def multicast(clinic, user_ids: list[str], messages: list[dict], retry_key: str, unit: str | None = None) -> Sent:
    """Send to up to 500 friends at once, with a retry key (409 on a repeat) and an optional
    aggregation unit."""
    with _translated():
        request = _multicast_request(user_ids, messages, unit)
    api = messaging_api(clinic)
    return _sent(_call(api.multicast_with_http_info, request, x_line_retry_key=retry_key))


class _KnownRecipients(MulticastRequest):
    """A multicast to LINE user ids that came from our database: its body is the validated
    request's, with every recipient. Pydantic's ``dict()`` walks the 500 ids one by one to
    serialise them (0.6 ms of CPU per multicast); they are plain strings."""

    def to_dict(self) -> dict:
        body = MulticastRequest.to_dict(self.copy(update={"to": self.to[:1]}))
        body["to"] = list(self.to)
        return body


def _multicast_request(user_ids: list[str], messages: list[dict], unit: str | None) -> MulticastRequest:
    """The SDK validates the request with its first recipient, then takes the others as they are:
    validating 500 LINE user ids (ours, from the database) one by one cost more than a
    millisecond of CPU per multicast. Up to 500 ids still, as LINE requires."""
    if not 1 <= len(user_ids) <= 500:
        raise LineRequestRejected(f"invalid request: a multicast goes to 1-500 users, not {len(user_ids)}", status=None)
    checked = MulticastRequest.from_dict(_with_unit({"to": user_ids[:1], "messages": messages}, unit))
    fields = {**checked.__dict__, "to": list(user_ids)}
    return _KnownRecipients.construct(_fields_set=set(checked.__fields_set__), **fields)


def get_profile(clinic, user_id: str) -> Profile:
    """A friend's LINE profile (display name, picture, language)."""
    found = _call(messaging_api(clinic).get_profile, user_id)
    return Profile(
        user_id=found.user_id,
        display_name=found.display_name,
        picture_url=found.picture_url,
        language=found.language,
        status_message=found.status_message,
    )


def bot_info(clinic) -> BotInfo:
    """The channel's bot: proves the access token works and gives the bot user id."""
    found = _call(messaging_api(clinic).get_bot_info)
    return BotInfo(
        user_id=found.user_id,
        basic_id=found.basic_id,
        display_name=found.display_name,
        picture_url=found.picture_url,
    )


def set_webhook_endpoint(clinic, url: str) -> None:
    """Point the channel's webhook at ``url``."""
    _call(messaging_api(clinic).set_webhook_endpoint, SetWebhookEndpointRequest(endpoint=url))


def test_webhook_endpoint(clinic, url: str | None = None) -> WebhookTest:
    """Ask LINE to send a test webhook (to ``url`` or the configured endpoint) and report."""
    found = _call(messaging_api(clinic).test_webhook_endpoint, TestWebhookEndpointRequest(endpoint=url))
    return WebhookTest(
        success=bool(found.success),
        status_code=found.status_code,
        reason=found.reason or "",
        detail=found.detail or "",
    )


@dataclass(frozen=True)
class Content:
    data: bytes
    content_type: str


def message_content(clinic, message_id: str) -> Content:
    """The image/video/audio/file a friend sent (data host); LINE keeps it for a limited time."""
    response = _call(blob_api(clinic).get_message_content_with_http_info, message_id)
    content_type = _header(response.headers, "content-type") or "application/octet-stream"
    return Content(data=bytes(response.data or b""), content_type=content_type.split(";")[0].strip()[:100])


def follower_ids(clinic, page_size: int = 1000) -> Iterator[str]:
    """Every friend's user id (``/v2/bot/followers/ids``, verified and premium accounts), page by page."""
    start = None
    while True:
        page = _call(messaging_api(clinic).get_followers, start=start, limit=page_size)
        yield from page.user_ids or []
        start = page.next
        if not start:
            return


def quota_consumption(clinic) -> int:
    """Billable messages LINE counted this month (``/v2/bot/message/quota/consumption``)."""
    return int(_call(messaging_api(clinic).get_message_quota_consumption).total_usage or 0)
