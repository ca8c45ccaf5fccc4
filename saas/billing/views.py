"""The billing page of an agency or organization, Checkout and the Customer Portal, and
``POST /webhooks/stripe``.

The tenant scope on these pages is every clinic the user sees, which says nothing about paying,
so each view checks ``billing.manage`` at the paying level; anyone else gets a 404.
"""

from __future__ import annotations

import functools
import logging
from urllib.parse import urlsplit

import stripe
from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from saas.audit.labels import action_label, detail_items
from saas.billing import accounts, dunning, events, gateway, hooks, plans, services
from saas.billing.models import status_label
from saas.extensions import csrf, db
from saas.portal.menu import register
from saas.security.headers import content_security_policy
from saas.tenancy.access import current_clinic, require

log = logging.getLogger(__name__)
bp = Blueprint("billing", __name__)
hooks.install(Session)  # quantity follows clinics created or deleted anywhere

register("billing.for_clinic", _l("ご契約・お支払い"), "¥", permission="billing.manage", order=95)


@bp.after_request
def _allow_the_stand_in_as_form_target(response):
    """The CSP lets forms lead to https: (Stripe); the stand-in of development and tests is plain http."""
    base = urlsplit(current_app.config.get("STRIPE_API_BASE") or "")
    if base.scheme == "http" and base.netloc:
        policy = content_security_policy(g.get("csp_nonce"))
        response.headers["Content-Security-Policy"] = policy.replace(
            "form-action 'self' https:", f"form-action 'self' https: http://{base.netloc}"
        )
    return response


def managed_payer(view):
    """Resolve ``<level>/<slug>`` to g.payer; 404 unless the user manages that payer's billing."""

    @functools.wraps(view)
    def wrapped(level: str, slug: str, **kwargs):
        payer = accounts.find_payer(level, slug)
        if not accounts.can_manage(current_user, payer):
            abort(404)  # another agency's billing is not even acknowledged
        g.payer = payer
        return view(**kwargs)

    return wrapped


def _here(**values) -> str:
    return url_for(".page", level=g.payer.level, slug=g.payer.slug, _external=True, **values)


@bp.app_context_processor
def billing_banner():
    """``billing_notice()``: the dunning banner for the clinic of the page, if any."""

    def notice():
        clinic = g.get("clinic")
        if clinic is None or not current_user.is_authenticated or not gateway.is_configured():
            return None  # without Stripe nobody pays, so nobody is in dunning: no query on every page
        account = accounts.account_for_clinic(clinic)
        found = dunning.banner(account)
        if found is None:
            return None
        payer = accounts.payer_of_account(account)
        return {**found, "payer": payer, "manages": accounts.can_manage(current_user, payer)}

    return {"billing_notice": notice}


@bp.get("/billing/<level>/<slug>/")
@login_required
@managed_payer
def page():
    """Plan, counted clinics, payment state, the next invoice and the invoice history."""
    if request.args.get("session_id") and gateway.is_configured():
        _return_from_checkout(request.args["session_id"])
    account = accounts.account_of(g.payer)
    return render_template(
        "billing/page.html",
        payer=g.payer,
        account=account,
        plan=plans.get_plan(account.plan_key if account else None),
        clinics=accounts.counted_clinics(g.payer),
        upcoming=services.upcoming_invoice(account) if account and gateway.is_configured() else None,
        invoices=services.invoices(account) if account else [],
        history=services.history(account) if account else [],
        action_label=action_label,
        status_label=status_label,
        detail_items=detail_items,
        notice=dunning.banner(account),
        configured=gateway.is_configured(),
    )


def _return_from_checkout(session_id: str) -> None:
    """Back from Checkout: read the session from Stripe at once (the webhook may still be on its way)."""
    try:
        account = services.complete_checkout(session_id)
        mine = account is not None and account.id == getattr(accounts.account_of(g.payer), "id", None)
        if mine:
            db.session.commit()
    except stripe.StripeError as error:
        log.warning("billing: checkout session %s could not be read: %s", session_id, error)
        return
    except IntegrityError:  # the webhook stored the same invoices a moment earlier: its state stands
        db.session.rollback()
        mine = True
    if mine:
        flash(_("お申し込みありがとうございます。ご契約が始まりました。"), "success")
    else:
        db.session.rollback()


@bp.post("/billing/<level>/<slug>/checkout")
@login_required
@managed_payer
def checkout():
    """Start a subscription: off to Stripe Checkout."""
    account = accounts.account_of(g.payer)
    if account is not None and account.is_live:
        flash(_("すでにご契約中です。"), "info")
        return redirect(_here())
    try:
        target = services.start_checkout(
            g.payer, current_user, _here() + "?session_id={CHECKOUT_SESSION_ID}", _here(checkout="cancelled")
        )
    except stripe.StripeError as error:
        return _stripe_down(error)
    return redirect(target, 303)


@bp.post("/billing/<level>/<slug>/portal")
@login_required
@managed_payer
def portal():
    """Cards, invoices and cancellation: off to Stripe's Customer Portal."""
    account = accounts.account_of(g.payer)
    if account is None or account.stripe_customer_id is None:
        abort(404)
    try:
        return redirect(services.portal_url(account, _here()), 303)
    except stripe.StripeError as error:
        return _stripe_down(error)


def _stripe_down(error: stripe.StripeError):
    log.error("billing: Stripe refused or is unreachable: %s", error)
    flash(_("決済サービスに接続できませんでした。少し待ってからもう一度お試しください。"), "error")
    return redirect(_here())


@bp.get("/c/<clinic>/billing")
@login_required
@require("billing.manage")
def for_clinic():
    """From a clinic's menu to the billing page of whoever pays for it (or may start paying)."""
    clinic = current_clinic()
    account = accounts.account_for_clinic(clinic)
    candidates = [accounts.payer_of_account(account)] if account else []
    organization = clinic.organization
    if organization.agency_id:
        candidates.append(accounts.find_payer("agency", organization.agency.slug))
    candidates.append(accounts.find_payer("organization", organization.slug))
    for payer in candidates:
        if accounts.can_manage(current_user, payer):
            return redirect(url_for(".page", level=payer.level, slug=payer.slug))
    payer = candidates[0]
    return render_template("billing/managed_elsewhere.html", payer=payer)


@bp.post("/webhooks/stripe")
@csrf.exempt
def stripe_webhook():
    """Stripe's events: signature (300 s tolerance) first, then each event id handled once."""
    secret = current_app.config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        abort(503)
    payload = request.get_data(cache=False)
    try:
        event = events.verify(payload, request.headers.get("Stripe-Signature", ""), secret)
    except events.BadSignature as refused:
        log.warning("billing: webhook refused: %s", refused)
        return {"error": "invalid signature"}, 400
    return {"received": events.receive(event)}, 200
