"""The ``/v1`` calls the product makes, form-encoded as the ``stripe`` library sends them.

Auth is ``Authorization: Bearer sk_test_…`` (401 otherwise); POSTs honour ``Idempotency-Key``
(the same key on the same path answers the first answer again); errors have Stripe's shape.
"""

from __future__ import annotations

import re

from flask import Blueprint, current_app, g, jsonify, request

from . import flows, objects
from .state import CheckoutSession, Customer, PortalSession, Price, Product, StripeState, new_id
from .webhooks import deliver

bp = Blueprint("stripe_api", __name__, url_prefix="/v1")
SESSION_HOURS = 24
_KEY = re.compile(r"^([^\[]+)((?:\[[^\]]*\])*)$")


class StripeError(Exception):
    """An error answer in Stripe's shape."""

    def __init__(self, status: int, message: str, *, code: str | None = None, param: str | None = None):
        super().__init__(message)
        self.status, self.body = status, objects.error(message, code=code, param=param)


def state() -> StripeState:
    return current_app.extensions["stripe_sandbox"]


def parse_form(pairs) -> dict:
    """``a[b][0][c]=v`` pairs into nested dicts, with runs of numeric keys made into lists."""
    root: dict = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if not match:
            continue
        path = [match.group(1), *re.findall(r"\[([^\]]*)\]", match.group(2))]
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return _listify(root)


def _listify(node):
    if not isinstance(node, dict):
        return node
    if node and all(k.isdigit() for k in node):
        return [_listify(node[k]) for k in sorted(node, key=int)]
    return {k: _listify(v) for k, v in node.items()}


def params() -> dict:
    pairs = list(request.args.items(multi=True))
    if request.method != "GET":
        pairs += list(request.form.items(multi=True))
    return parse_form(pairs)


def _bool(value) -> bool:
    return str(value).lower() == "true"


def _need(found: dict, name: str):
    value = found.get(name)
    if value in (None, ""):
        raise StripeError(400, f"Missing required param: {name}.", code="parameter_missing", param=name)
    return value


def _find(table: dict, object_id: str, noun: str):
    found = table.get(object_id)
    if found is None:
        raise StripeError(404, f"No such {noun}: '{object_id}'", code="resource_missing", param="id")
    return found


@bp.before_request
def _authenticate():
    header = request.headers.get("Authorization", "")
    key = header.removeprefix("Bearer ").strip()
    if not key.startswith(("sk_test_", "rk_test_")):
        body = objects.error(f"Invalid API Key provided: {key[:12]}***")
        return jsonify(body), 401
    st = state()
    with st.lock:
        st.base_url = request.host_url.rstrip("/")
        g.logged = {"method": request.method, "path": request.path, "params": params()}
        st.requests.append(g.logged)
        replay = st.idempotency.get((request.headers.get("Idempotency-Key", ""), request.path))
    if request.method == "POST" and replay is not None:
        return jsonify(replay[1]), replay[0]
    return None


@bp.after_request
def _remember(response):
    key = request.headers.get("Idempotency-Key")
    if "logged" in g and response.is_json:
        g.logged.update(status=response.status_code, response=response.get_json())
    if request.method == "POST" and key and response.is_json:
        with state().lock:
            state().idempotency.setdefault((key, request.path), (response.status_code, response.get_json()))
    response.headers["Request-Id"] = new_id("req")
    response.headers["Stripe-Version"] = flows.API_VERSION
    return response


@bp.errorhandler(StripeError)
def _stripe_error(error: StripeError):
    return jsonify(error.body), error.status


def answer(build, *args):
    """Serialise under the lock, deliver the events a call emitted after it."""
    st = state()
    with st.lock:
        result = build(st, *args)
        body, events = result if isinstance(result, tuple) else (result, [])
    deliver(st, events)
    return jsonify(body)


# Customers ---------------------------------------------------------------------------------------
@bp.post("/customers")
def create_customer():
    given = params()

    def build(st: StripeState):
        customer = Customer(new_id("cus"), st.now(), given.get("email"), given.get("name"), given.get("metadata") or {})
        customer.invoice_prefix = customer.id[-8:].upper()
        st.customers[customer.id] = customer
        return objects.customer(customer)

    return answer(build)


@bp.get("/customers/<customer_id>")
def get_customer(customer_id: str):
    return answer(lambda st: objects.customer(_find(st.customers, customer_id, "customer")))


@bp.post("/customers/<customer_id>")
def update_customer(customer_id: str):
    given = params()

    def build(st: StripeState):
        customer = _find(st.customers, customer_id, "customer")
        customer.email = given.get("email", customer.email)
        customer.name = given.get("name", customer.name)
        customer.metadata.update(given.get("metadata") or {})
        return objects.customer(customer)

    return answer(build)


# Products and prices -----------------------------------------------------------------------------
@bp.post("/products")
def create_product():
    given = params()

    def build(st: StripeState):
        item = Product(
            new_id("prod"), st.now(), _need(given, "name"), given.get("description"), given.get("metadata") or {}
        )
        item.unit_label = given.get("unit_label")
        st.products[item.id] = item
        return objects.product(item)

    return answer(build)


@bp.get("/products/<product_id>")
def get_product(product_id: str):
    return answer(lambda st: objects.product(_find(st.products, product_id, "product")))


@bp.post("/prices")
def create_price():
    given = params()

    def build(st: StripeState):
        product = _find(st.products, _need(given, "product"), "product")
        recurring = given.get("recurring") or {}
        if given.get("lookup_key") and _bool(given.get("transfer_lookup_key")):
            for other in st.prices.values():
                other.lookup_key = None if other.lookup_key == given["lookup_key"] else other.lookup_key
        elif given.get("lookup_key") and any(p.lookup_key == given["lookup_key"] for p in st.prices.values()):
            raise StripeError(400, "A price with this lookup_key already exists.", param="lookup_key")
        item = Price(
            new_id("price"),
            st.now(),
            product.id,
            _need(given, "currency").lower(),
            int(_need(given, "unit_amount")),
            recurring.get("interval", "month"),
            given.get("lookup_key"),
            given.get("nickname"),
            given.get("metadata") or {},
            recurring.get("meter"),
        )
        st.prices[item.id] = item
        product.default_price = product.default_price or item.id
        return objects.price(item)

    return answer(build)


@bp.get("/prices")
def list_prices():
    given = params()
    keys = given.get("lookup_keys")
    keys = [keys] if isinstance(keys, str) else keys

    def build(st: StripeState):
        found = [p for p in st.prices.values() if (not keys or p.lookup_key in keys)]
        if "active" in given:
            found = [p for p in found if p.active == _bool(given["active"])]
        return {"object": "list", "data": [objects.price(p) for p in found], "has_more": False, "url": "/v1/prices"}

    return answer(build)


@bp.get("/prices/<price_id>")
def get_price(price_id: str):
    return answer(lambda st: objects.price(_find(st.prices, price_id, "price")))


# Checkout and the customer portal ----------------------------------------------------------------
@bp.post("/checkout/sessions")
def create_checkout_session():
    given = params()
    if given.get("mode") != "subscription":
        raise StripeError(400, "The stand-in serves mode=subscription only.", param="mode")
    lines = _need(given, "line_items")

    def build(st: StripeState):
        prices = [_find(st.prices, _need(line, "price"), "price") for line in lines]
        customer = _find(st.customers, given["customer"], "customer") if given.get("customer") else None
        if customer is None:
            customer = Customer(new_id("cus"), st.now(), given.get("customer_email"))
            customer.invoice_prefix = customer.id[-8:].upper()
            st.customers[customer.id] = customer
        total = sum(p.unit_amount * int(line.get("quantity") or 1) for p, line in zip(prices, lines, strict=True))
        session = CheckoutSession(
            new_id("cs_test"),
            st.now(),
            st.now() + SESSION_HOURS * 3600,
            _need(given, "success_url"),
            given.get("cancel_url"),
            lines,
            prices[0].currency,
            total,
            customer.id,
            given.get("customer_email") or customer.email,
            given.get("client_reference_id"),
            given.get("metadata") or {},
            (given.get("subscription_data") or {}).get("metadata") or {},
            given.get("locale"),
        )
        st.checkout_sessions[session.id] = session
        return objects.checkout_session(session, st.base_url)

    return answer(build)


@bp.get("/checkout/sessions/<session_id>")
def get_checkout_session(session_id: str):
    return answer(
        lambda st: objects.checkout_session(_find(st.checkout_sessions, session_id, "checkout.session"), st.base_url)
    )


@bp.post("/billing_portal/sessions")
def create_portal_session():
    given = params()

    def build(st: StripeState):
        customer = _find(st.customers, _need(given, "customer"), "customer")
        session = PortalSession(new_id("bps"), st.now(), customer.id, _need(given, "return_url"), given.get("locale"))
        st.portal_sessions[session.id] = session
        return objects.portal_session(session, st.base_url)

    return answer(build)


# Subscriptions -----------------------------------------------------------------------------------
@bp.get("/subscriptions/<subscription_id>")
def get_subscription(subscription_id: str):
    return answer(lambda st: flows.subscription_json(st, _find(st.subscriptions, subscription_id, "subscription")))


@bp.post("/subscriptions/<subscription_id>")
def update_subscription(subscription_id: str):
    given = params()

    def build(st: StripeState):
        sub = _find(st.subscriptions, subscription_id, "subscription")
        if sub.status == "canceled":
            raise StripeError(400, "A canceled subscription can only update its cancellation_details and metadata.")
        prorate = given.get("proration_behavior", "create_prorations") != "none"
        events = []
        for change in given.get("items") or []:
            item = next((i for i in sub.items if i.id == change.get("id")), None)
            if item is None:
                raise StripeError(400, f"Invalid subscription item: '{change.get('id')}'", param="items")
            if "quantity" in change:
                events += flows.change_quantity(st, sub, item, int(change["quantity"]), prorate)
        if "cancel_at_period_end" in given:
            events += flows.set_cancel_at_period_end(st, sub, _bool(given["cancel_at_period_end"]))
        sub.metadata.update(given.get("metadata") or {})
        return flows.subscription_json(st, sub), events

    return answer(build)


@bp.delete("/subscriptions/<subscription_id>")
def cancel_subscription(subscription_id: str):
    def build(st: StripeState):
        sub = _find(st.subscriptions, subscription_id, "subscription")
        events = [] if sub.status == "canceled" else flows.cancel_now(st, sub)
        return flows.subscription_json(st, sub), events

    return answer(build)


# Invoices ----------------------------------------------------------------------------------------
@bp.get("/invoices")
def list_invoices():
    given = params()
    limit = min(int(given.get("limit") or 10), 100)

    def build(st: StripeState):
        found = [i for i in st.invoices.values() if given.get("customer") in (None, i.customer)]
        if given.get("subscription"):
            found = [i for i in found if i.subscription == given["subscription"]]
        found.sort(key=lambda i: i.created, reverse=True)
        data = [flows.invoice_json(st, i) for i in found[:limit]]
        return {"object": "list", "data": data, "has_more": len(found) > limit, "url": "/v1/invoices"}

    return answer(build)


@bp.get("/invoices/<invoice_id>")
def get_invoice(invoice_id: str):
    return answer(lambda st: flows.invoice_json(st, _find(st.invoices, invoice_id, "invoice")))


@bp.post("/invoices/create_preview")
def preview_invoice():
    given = params()

    def build(st: StripeState):
        sub = _find(st.subscriptions, _need(given, "subscription"), "subscription")
        if sub.status == "canceled" or sub.cancel_at_period_end:
            raise StripeError(400, "No upcoming invoices for customer", code="invoice_upcoming_none")
        return flows.invoice_json(st, flows.upcoming(st, sub))

    return answer(build)
