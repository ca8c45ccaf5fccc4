"""The stand-in's control API under ``/_stripe/`` (JSON, no auth): the webhook endpoint, the
clock, declined cards, held and re-sent events, and the request log."""

from __future__ import annotations

from flask import Blueprint, abort, jsonify, request

from . import flows, objects
from .api import state
from .state import SECONDS_PER_DAY
from .webhooks import deliver, payload_of, signature_header

bp = Blueprint("stripe_control", __name__, url_prefix="/_stripe")


def _body() -> dict:
    return request.get_json(silent=True) or {}


@bp.post("/reset")
def reset():
    state().reset()
    return jsonify({"reset": True})


@bp.put("/webhook")
def set_webhook():
    body = _body()
    st = state()
    with st.lock:
        st.webhook_url, st.webhook_secret = body.get("url"), body.get("secret")
        st.hold_events = bool(body.get("hold", st.hold_events))
    return jsonify({"url": st.webhook_url, "hold": st.hold_events})


@bp.post("/hold")
def hold():
    """Keep events instead of sending them (``{"hold": false}`` sends again from now on)."""
    st = state()
    with st.lock:
        st.hold_events = bool(_body().get("hold", True))
        held, st.held = (st.held, []) if not st.hold_events else ([], st.held)
    return jsonify({"hold": st.hold_events, "released": held})


@bp.get("/events")
def events():
    st = state()
    with st.lock:
        listed = [
            {
                "id": e.id,
                "type": e.type,
                "created": e.created,
                "object": e.snapshot.get("id"),
                "deliveries": e.deliveries,
            }
            for e in sorted(st.events.values(), key=lambda e: e.created)
        ]
        return jsonify({"events": listed, "held": list(st.held)})


@bp.get("/events/<event_id>")
def event(event_id: str):
    st = state()
    with st.lock:
        found = st.events.get(event_id) or abort(404)
        return jsonify(objects.event(found))


@bp.get("/events/<event_id>/signed")
def signed(event_id: str):
    """The event's exact payload and a header signed now (or at ``?t=``), for replay and tamper tests."""
    st = state()
    with st.lock:
        if event_id not in st.events or not st.webhook_secret:
            abort(404)
        payload = payload_of(st, event_id)
        header = signature_header(st.webhook_secret, payload, request.args.get("t", type=int))
    return jsonify({"payload": payload.decode(), "signature": header})


@bp.post("/events/send")
def send_events():
    """Deliver these events now, in this order (held or already sent ones alike)."""
    ids = _body().get("ids") or []
    st = state()
    with st.lock:
        if any(i not in st.events for i in ids):
            abort(404)
        st.held = [i for i in st.held if i not in ids]
    return jsonify({"results": deliver(st, ids, force=True)})


def _run(action, *args):
    st = state()
    with st.lock:
        emitted = action(st, *args)
    return jsonify({"events": emitted, "results": deliver(st, emitted)})


@bp.post("/advance")
def advance():
    """Move the clock by ``{"days"}`` or ``{"seconds"}``: subscriptions renew, invoices are charged."""
    body = _body()
    seconds = int(float(body.get("days", 0)) * SECONDS_PER_DAY) + int(body.get("seconds", 0))
    return _run(flows.advance, seconds)


@bp.post("/customers/<customer_id>/decline")
def decline(customer_id: str):
    """The card declines the next ``{"count"}`` charges (default 1)."""
    st = state()
    with st.lock:
        customer = st.customers.get(customer_id) or abort(404)
        customer.declines = int(_body().get("count", 1))
    return jsonify({"customer": customer_id, "declines": customer.declines})


@bp.post("/customers/<customer_id>/pay")
def pay(customer_id: str):
    """A working card is added: every open invoice of the customer is charged again."""
    with state().lock:
        state().customers.get(customer_id) or abort(404)
    return _run(flows.pay_open_invoices, customer_id)


@bp.get("/requests")
def requests_log():
    with state().lock:
        return jsonify(list(state().requests))


@bp.get("/subscriptions")
def subscriptions():
    st = state()
    with st.lock:
        return jsonify([flows.subscription_json(st, s) for s in st.subscriptions.values()])
