"""The stand-in's pages: Checkout (pay / cancel), the Customer Portal (pay open invoices with a new
card, cancel at period end, return) and hosted invoices with a PDF."""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template_string

from . import flows
from .api import state
from .webhooks import deliver

bp = Blueprint("stripe_pages", __name__)

PAGE = """<!doctype html><html lang="ja"><head><meta charset="utf-8"><title>{{ title }} | Stripe sandbox</title>
<style>body{font-family:sans-serif;max-width:40rem;margin:2rem auto;color:#1a1f36}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #ddd;padding:.4rem;text-align:left}
button{font-size:1rem;padding:.5rem 1.2rem;margin:.3rem}.muted{color:#697386}</style></head><body>
<p class="muted">Stripe sandbox (test mode)</p><h1>{{ title }}</h1>{{ body|safe }}</body></html>"""

CHECKOUT = """
<table><tr><th>品目</th><th>数量</th><th>金額</th></tr>
{% for line in lines %}<tr><td>{{ line.name }}</td><td>{{ line.quantity }}</td><td>¥{{ "{:,}".format(line.amount) }}</td></tr>{% endfor %}
<tr><th colspan="2">合計（毎月）</th><th data-testid="checkout-total">¥{{ "{:,}".format(session.amount_total) }}</th></tr></table>
<p class="muted">カード番号 4242 4242 4242 4242（テスト）</p>
<form method="post" action="/checkout/{{ session.id }}/pay"><button type="submit" name="pay">支払う / Pay</button></form>
{% if session.cancel_url %}<form method="post" action="/checkout/{{ session.id }}/cancel">
<button type="submit" name="cancel">キャンセル / Cancel</button></form>{% endif %}
"""

PORTAL = """
{% for sub in subscriptions %}<p>契約 {{ sub.id }}: <strong data-testid="portal-status">{{ sub.status }}</strong>
{% if sub.cancel_at_period_end %}（期間末に解約）{% endif %}</p>{% endfor %}
<h2>請求書</h2><table>{% for inv in invoices %}<tr><td><a href="/invoices/{{ inv.id }}">{{ inv.number }}</a></td>
<td>¥{{ "{:,}".format(inv.total) }}</td><td>{{ inv.status }}</td></tr>{% endfor %}</table>
<form method="post" action="/portal/{{ session.id }}/pay"><button type="submit">カードを更新して未払いを支払う / Update card and pay</button></form>
<form method="post" action="/portal/{{ session.id }}/cancel"><button type="submit">解約する（期間末） / Cancel plan</button></form>
<p><a href="{{ session.return_url }}">戻る / Return</a></p>
"""

INVOICE = """<p>請求書番号 {{ inv.number }} ・ 状態 <strong>{{ inv.status }}</strong></p>
<table>{% for line in inv.lines %}<tr><td>{{ line.description }}</td><td>¥{{ "{:,}".format(line.amount) }}</td></tr>{% endfor %}
<tr><th>合計</th><th>¥{{ "{:,}".format(inv.total) }}</th></tr></table><p><a href="/invoices/{{ inv.id }}/pdf">PDF</a></p>"""


def _page(title: str, body: str, **values) -> str:
    return render_template_string(PAGE, title=title, body=render_template_string(body, **values))


@bp.get("/checkout/<session_id>")
def checkout(session_id: str):
    st = state()
    with st.lock:
        session = st.checkout_sessions.get(session_id) or abort(404)
        if session.status != "open":
            abort(410)
        lines = []
        for line in session.line_items:
            price = st.prices[line["price"]]
            quantity = int(line.get("quantity") or 1)
            lines.append(
                {"name": st.products[price.product].name, "quantity": quantity, "amount": price.unit_amount * quantity}
            )
        return _page("お支払い / Checkout", CHECKOUT, session=session, lines=lines)


@bp.post("/checkout/<session_id>/pay")
def checkout_pay(session_id: str):
    st = state()
    with st.lock:
        session = st.checkout_sessions.get(session_id) or abort(404)
        if session.status != "open":
            abort(410)
        emitted = flows.complete_checkout(st, session)
        target = session.success_url.replace("{CHECKOUT_SESSION_ID}", session.id)
    deliver(st, emitted)
    return redirect(target, 303)


@bp.post("/checkout/<session_id>/cancel")
def checkout_cancel(session_id: str):
    st = state()
    with st.lock:
        session = st.checkout_sessions.get(session_id) or abort(404)
        return redirect(session.cancel_url or "/", 303)


def _portal_view(st, session):
    subscriptions = [s for s in st.subscriptions.values() if s.customer == session.customer]
    invoices = sorted((i for i in st.invoices.values() if i.customer == session.customer), key=lambda i: -i.created)
    return {"session": session, "subscriptions": subscriptions, "invoices": invoices}


@bp.get("/portal/<session_id>")
def portal(session_id: str):
    st = state()
    with st.lock:
        session = st.portal_sessions.get(session_id) or abort(404)
        return _page("カスタマーポータル / Customer portal", PORTAL, **_portal_view(st, session))


@bp.post("/portal/<session_id>/pay")
def portal_pay(session_id: str):
    st = state()
    with st.lock:
        session = st.portal_sessions.get(session_id) or abort(404)
        emitted = flows.pay_open_invoices(st, session.customer)
    deliver(st, emitted)
    return redirect(f"/portal/{session_id}", 303)


@bp.post("/portal/<session_id>/cancel")
def portal_cancel(session_id: str):
    st = state()
    with st.lock:
        session = st.portal_sessions.get(session_id) or abort(404)
        emitted = []
        for sub in st.subscriptions.values():
            if sub.customer == session.customer and sub.status != "canceled":
                emitted += flows.set_cancel_at_period_end(st, sub, True)
    deliver(st, emitted)
    return redirect(f"/portal/{session_id}", 303)


@bp.get("/invoices/<invoice_id>")
def hosted_invoice(invoice_id: str):
    st = state()
    with st.lock:
        inv = st.invoices.get(invoice_id) or abort(404)
        return _page("請求書 / Invoice", INVOICE, inv=inv)


@bp.get("/invoices/<invoice_id>/pdf")
def invoice_pdf(invoice_id: str):
    st = state()
    with st.lock:
        inv = st.invoices.get(invoice_id) or abort(404)
        text = f"Invoice {inv.number} total JPY {inv.total} status {inv.status}"
    return minimal_pdf(text), 200, {"Content-Type": "application/pdf"}


def minimal_pdf(text: str) -> bytes:
    """A one-page PDF showing one line of ASCII text (enough for a viewer to open)."""
    safe = text.replace("\\", "").replace("(", "").replace(")", "")
    stream = f"BT /F1 14 Tf 72 760 Td ({safe}) Tj ET".encode()
    parts = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(parts, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % number + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(parts) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(parts) + 1, xref)
    return bytes(out)
