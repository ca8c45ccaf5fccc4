"""LINE's statistics (``linebot.v3.insight``), in the style of :mod:`saas.line.client`.

Counts LINE withholds for privacy (fewer than 20 users, and some other cases) come back as
None and stay None here: a caller must never read them as 0. Dates are LINE's ``yyyyMMdd``
in Japan time (UTC+9).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import urllib3
from flask import current_app
from linebot.v3.insight import ApiClient, ApiException, Configuration, Insight
from pydantic import v1 as pydantic

from saas.line.client import REQUEST_TIMEOUT, _token
from saas.line.errors import LineRequestRejected, LineServerError, translate

_MAX_CACHED_CLIENTS = 256
_clients: dict[tuple[str, str], ApiClient] = {}
_clients_lock = threading.Lock()


@dataclass(frozen=True)
class UrlClicks:
    url: str
    clicks: int | None
    unique_clicks: int | None


@dataclass(frozen=True)
class Interactions:
    """One request's (or one aggregation unit's) interactions; None = withheld by LINE."""

    delivered: int | None = None  # per request only
    impressions: int | None = None  # times the first bubble was shown (opens, counting repeats)
    unique_impression: int | None = None
    unique_click: int | None = None
    unique_media_played: int | None = None
    unique_media_played_100: int | None = None
    clicks: list[UrlClicks] = field(default_factory=list)


@dataclass(frozen=True)
class Followers:
    status: str  # ready | unready | out_of_service
    followers: int | None = None
    targeted_reaches: int | None = None
    blocks: int | None = None


@dataclass(frozen=True)
class Deliveries:
    status: str
    counts: dict[str, int | None] = field(default_factory=dict)  # LINE's keys: broadcast, apiPush, ...


@dataclass(frozen=True)
class Demographics:
    available: bool
    tiles: dict[str, list[dict]] = field(default_factory=dict)  # genders, ages, areas, appTypes, subscriptionPeriods


DELIVERY_KEYS = (
    "broadcast",
    "targeting",
    "autoResponse",
    "welcomeResponse",
    "chat",
    "apiBroadcast",
    "apiPush",
    "apiMulticast",
    "apiNarrowcast",
    "apiReply",
)
DEMOGRAPHIC_KEYS = ("genders", "ages", "areas", "appTypes", "subscriptionPeriods")


def insight_api(clinic) -> Insight:
    """The SDK's Insight API for this clinic's channel, on ``LINE_API_BASE``."""
    key = (current_app.config["LINE_API_BASE"], _token(clinic))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if len(_clients) >= _MAX_CACHED_CLIENTS:
                _clients.clear()
            client = ApiClient(Configuration(host=key[0], access_token=key[1]))
            _clients[key] = client
    return Insight(client)


@contextmanager
def _translated():
    try:
        yield
    except ApiException as exc:  # the insight package has its own ApiException class
        raise translate(exc) from exc
    except urllib3.exceptions.HTTPError as exc:
        raise LineServerError(f"LINE could not be reached: {type(exc).__name__}") from exc
    except (pydantic.ValidationError, ValueError) as exc:
        raise LineRequestRejected(f"invalid request: {exc}", status=None) from exc


def _call(method: Callable, *args, **kwargs):
    with _translated():
        return method(*args, _request_timeout=REQUEST_TIMEOUT, **kwargs)


def _first_impressions(messages) -> int | None:
    first = next((m for m in messages or [] if m.seq == 1), None)
    return first.impression if first is not None else None


def _clicks(rows) -> list[UrlClicks]:
    return [UrlClicks(url=row.url or "", clicks=row.click, unique_clicks=row.unique_click) for row in rows or []]


def message_event(clinic, request_id: str) -> Interactions:
    """Interactions with one send request (``/v2/bot/insight/message/event``)."""
    found = _call(insight_api(clinic).get_message_event, request_id)
    overview = found.overview
    return Interactions(
        delivered=getattr(overview, "delivered", None),
        impressions=_first_impressions(found.messages),
        unique_impression=getattr(overview, "unique_impression", None),
        unique_click=getattr(overview, "unique_click", None),
        unique_media_played=getattr(overview, "unique_media_played", None),
        unique_media_played_100=getattr(overview, "unique_media_played100_percent", None),
        clicks=_clicks(found.clicks),
    )


def unit_statistics(clinic, unit: str, start: str, end: str) -> Interactions:
    """Interactions with the push/multicast requests tagged ``unit`` sent from ``start`` to ``end``
    (``yyyyMMdd``, at most 30 days apart)."""
    found = _call(insight_api(clinic).get_statistics_per_unit, unit, start, end)
    overview = found.overview
    return Interactions(
        impressions=_first_impressions(found.messages),
        unique_impression=getattr(overview, "unique_impression", None),
        unique_click=getattr(overview, "unique_click", None),
        unique_media_played=getattr(overview, "unique_media_played", None),
        unique_media_played_100=getattr(overview, "unique_media_played100_percent", None),
        clicks=_clicks(found.clicks),
    )


def followers(clinic, day: str) -> Followers:
    """Friends added (ever), targeted reaches and blocks as of the end of ``day`` (``yyyyMMdd``)."""
    found = _call(insight_api(clinic).get_number_of_followers, var_date=day)
    return Followers(
        status=found.status or "unready",
        followers=found.followers,
        targeted_reaches=found.targeted_reaches,
        blocks=found.blocks,
    )


def message_deliveries(clinic, day: str) -> Deliveries:
    """Messages the account delivered on ``day``, by kind (LINE's keys)."""
    found = _call(insight_api(clinic).get_number_of_message_deliveries, day).to_dict()
    return Deliveries(status=found.get("status") or "unready", counts={k: found.get(k) for k in DELIVERY_KEYS})


def demographics(clinic) -> Demographics:
    """The friends' gender, age, area, OS and friendship-length shares (percentages)."""
    found = _call(insight_api(clinic).get_friends_demographics).to_dict()
    return Demographics(
        available=bool(found.get("available")),
        tiles={key: list(found.get(key) or []) for key in DEMOGRAPHIC_KEYS},
    )
