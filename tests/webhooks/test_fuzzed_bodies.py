"""Every correctly signed body is handled or refused cleanly: property-based, over real HTTP.

Hypothesis builds batches mixing LINE-shaped events whose text carries NUL bytes, lone
surrogates and emoji with fuzzed ones (ids over 64 characters, wrong types for ``message``,
``postback`` and ``data``, junk values, deep nesting). The endpoint must answer 200 (or 400
for a body that is not JSON at all), store and handle the valid events, skip the rest, and no
job may fail. Runs on whichever database the suite runs on (SQLite or Postgres).
"""

from __future__ import annotations

import itertools
import json
import time

import requests
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq.registry import FailedJobRegistry

from saas.extensions import db
from saas.friends.models import Direction, Message
from saas.queues import all_queues, get_redis
from saas.tenancy.scoping import tenant_scope
from saas.webhooks.models import WebhookEvent
from saas.webhooks.schema import clean_text
from tests.webhooks.support import connect_clinic, run_jobs, sign, webhook_url

_ids = itertools.count(1)
DEEP = "__DEEP__"

awkward_char = st.one_of(st.characters(), st.sampled_from(["\x00", "\ud800", "\udc00", "\udfff", "😷", "\u2028"]))
awkward_text = st.text(awkward_char, max_size=40)
long_text = st.text(st.sampled_from("aあ😷\x00"), min_size=60, max_size=300)
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), awkward_text)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(awkward_text, inner, max_size=4), max_leaves=12
)
deep = st.integers(min_value=20, max_value=3000).map(lambda depth: "[" * depth + "]" * depth)


def _line_event(kind: str, **fields) -> dict:
    n = next(_ids)
    event = {
        "type": kind,
        "mode": "active",
        "timestamp": int(time.time() * 1000),
        "webhookEventId": f"01FUZZ{n:020d}",
        "deliveryContext": {"isRedelivery": False},
        "source": {"type": "user", "userId": f"U{n % 5:032x}"},
    }
    event.update(fields)
    return event


@st.composite
def valid_text_events(draw) -> dict:
    n = next(_ids)
    message = {"type": "text", "id": f"{n:018d}", "quoteToken": "q", "text": draw(awkward_text.filter(bool))}
    return _line_event("message", replyToken=f"rt{n:030d}", message=message)


@st.composite
def fuzzed_events(draw) -> dict | object:
    event = _line_event(draw(st.sampled_from(["message", "postback", "follow", "unfollow", "unsend", "join"])))
    field = draw(
        st.sampled_from(["webhookEventId", "timestamp", "source", "replyToken", "message", "postback", "mode", "type"])
    )
    value = draw(st.one_of(awkward_text, long_text, json_values, st.just(DEEP)))
    if field == "message" and draw(st.booleans()):
        value = {"type": draw(st.sampled_from(["text", "image", "sticker", "bogus"])), "id": "1", "text": value}
    if field == "postback" and draw(st.booleans()):
        value = {"data": value}
    event[field] = value
    return event if draw(st.integers(0, 4)) else draw(json_values)


bodies = st.tuples(st.lists(valid_text_events(), max_size=3), st.lists(fuzzed_events(), max_size=4), deep)


def _body(events: list, deep_json: str) -> bytes:
    text = json.dumps({"destination": "U" + "0" * 32, "events": events})
    return text.replace(json.dumps(DEEP), deep_json).encode()


def _post(url: str, secret: str, body: bytes) -> int:
    headers = {"content-type": "application/json", "x-line-signature": sign(secret, body)}
    return requests.post(url, data=body, headers=headers, timeout=30).status_code


def _too_deep_to_parse(body: bytes) -> bool:
    try:
        json.loads(body)
    except RecursionError:
        return True
    return False


def test_generated_signed_bodies_are_stored_or_skipped_never_a_500(sandbox, live_server):
    clinic, _ = connect_clinic(sandbox, live_server)
    url, secret, clinic_id = webhook_url(live_server, clinic), clinic.line_channel_secret, clinic.id

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
    @given(bodies)
    def post_one(generated) -> None:
        good, fuzzed, deep_json = generated
        events = good + fuzzed
        body = _body(events, deep_json)
        status = _post(url, secret, body)
        assert status == (400 if _too_deep_to_parse(body) else 200)
        run_jobs()
        if status != 200:
            return
        db.session.expire_all()
        with tenant_scope(clinic_id):
            texts = set(db.session.scalars(sa.select(Message.text).where(Message.direction == Direction.IN)))
            failed = db.session.scalars(sa.select(WebhookEvent.error).where(WebhookEvent.state != "handled")).all()
        assert {clean_text(e["message"]["text"]) for e in good} <= texts
        assert failed == []

    post_one()
    assert all(FailedJobRegistry(queue=q, connection=get_redis()).count == 0 for q in all_queues())


def _text_event(text="こんにちは", **changes) -> dict:
    n = next(_ids)
    event = _line_event(
        "message",
        replyToken=f"rt{n:030d}",
        message={"type": "text", "id": f"{n:018d}", "quoteToken": "q", "text": text},
    )
    event.update(changes)
    return event


ATTACKS = {
    "an id over 64 characters": lambda: _text_event(webhookEventId="0" * 65),
    "a user id over 64 characters": lambda: _text_event(source={"type": "user", "userId": "U" + "f" * 64}),
    "message is a list": lambda: _text_event(message=["text", "hi"]),
    "message text is an object": lambda: _text_event(
        message={"type": "text", "id": "9", "quoteToken": "q", "text": {}}
    ),
    "message of an unknown type": lambda: _text_event(message={"type": "hologram", "id": "9"}),
    "postback is a string": lambda: _line_event("postback", replyToken="rt", postback="menu"),
    "postback data is a number": lambda: _line_event("postback", replyToken="rt", postback={"data": 42}),
    "an infinite timestamp": lambda: _text_event(timestamp=float("inf")),
    "nesting 500 levels deep": lambda: _text_event(
        message={"type": "text", "id": "9", "quoteToken": "q", "text": "x", "emojis": DEEP}
    ),
}


def test_each_named_attack_is_skipped_and_its_batch_neighbours_stored(sandbox, live_server):
    clinic, _ = connect_clinic(sandbox, live_server)
    url, secret = webhook_url(live_server, clinic), clinic.line_channel_secret
    for name, attack in ATTACKS.items():
        before, after = _text_event(f"前: {name}"), _text_event(f"後: {name}")
        body = _body([before, attack(), after], "[" * 500 + "]" * 500)
        assert _post(url, secret, body) == 200, name
    run_jobs()
    with tenant_scope(clinic.id):
        texts = db.session.scalars(sa.select(Message.text).order_by(Message.id)).all()
        states = set(db.session.scalars(sa.select(WebhookEvent.state)))
    assert sorted(texts) == sorted(text for name in ATTACKS for text in (f"前: {name}", f"後: {name}"))
    assert states == {"handled"}


def test_nul_bytes_and_lone_surrogates_reach_the_inbox_replaced(sandbox, live_server):
    clinic, _ = connect_clinic(sandbox, live_server)
    events = [
        _text_event("予約\x00したい\ud83d です"),
        _text_event("二通目", webhookEventId="01NUL\x00" + "0" * 10),
        _text_event("三通目", webhookEventId="01SUR\ud800" + "0" * 10, source={"type": "user", "userId": "U\x00"}),
    ]
    assert _post(webhook_url(live_server, clinic), clinic.line_channel_secret, _body(events, "")) == 200
    run_jobs()
    with tenant_scope(clinic.id):
        assert set(db.session.scalars(sa.select(Message.text))) == {"予約\ufffdしたい\ufffd です", "二通目", "三通目"}
        assert set(db.session.scalars(sa.select(WebhookEvent.state))) == {"handled"}


def test_a_body_nested_beyond_the_parsers_limit_is_a_bad_request(sandbox, live_server):
    clinic, _ = connect_clinic(sandbox, live_server)
    body = _body([_text_event(), DEEP], "[" * 100_000 + "]" * 100_000)
    assert _post(webhook_url(live_server, clinic), clinic.line_channel_secret, body) == 400
