"""Stripe objects as the API returns them: every key of Stripe's example objects, our values.

Builders take the stand-in's state and return plain dicts; fields the stand-in has no notion of
(tax, shipping, Connect) carry the value Stripe gives an account that does not use them.
"""

from __future__ import annotations

ADDRESS = {"city": None, "country": None, "line1": None, "line2": None, "postal_code": None, "state": None}
LIABILITY = {"type": "self"}
NO_AUTOMATIC_TAX = {"enabled": False, "liability": None, "disabled_reason": None}
PAYMENT_METHOD_OPTIONS = None


def _listing(data: list[dict], url: str) -> dict:
    return {"object": "list", "data": data, "has_more": False, "url": url}


def customer(c) -> dict:
    return {
        "id": c.id,
        "object": "customer",
        "address": None,
        "balance": 0,
        "created": c.created,
        "currency": "jpy" if c.has_subscription else None,
        "default_source": None,
        "delinquent": c.delinquent,
        "description": None,
        "discount": None,
        "email": c.email,
        "invoice_prefix": c.invoice_prefix,
        "invoice_settings": {
            "custom_fields": None,
            "default_payment_method": None,
            "footer": None,
            "rendering_options": None,
        },
        "livemode": False,
        "metadata": dict(c.metadata),
        "name": c.name,
        "next_invoice_sequence": c.next_invoice_sequence,
        "phone": None,
        "preferred_locales": [],
        "shipping": None,
        "tax_exempt": "none",
        "test_clock": None,
    }


def product(p) -> dict:
    return {
        "id": p.id,
        "object": "product",
        "active": p.active,
        "created": p.created,
        "default_price": p.default_price,
        "description": p.description,
        "images": [],
        "livemode": False,
        "marketing_features": [],
        "metadata": dict(p.metadata),
        "name": p.name,
        "package_dimensions": None,
        "shippable": None,
        "statement_descriptor": None,
        "tax_code": None,
        "type": "service",
        "unit_label": p.unit_label,
        "updated": p.created,
        "url": None,
    }


def price(p) -> dict:
    return {
        "id": p.id,
        "object": "price",
        "active": p.active,
        "billing_scheme": "per_unit",
        "created": p.created,
        "currency": p.currency,
        "custom_unit_amount": None,
        "livemode": False,
        "lookup_key": p.lookup_key,
        "metadata": dict(p.metadata),
        "nickname": p.nickname,
        "product": p.product,
        "recurring": {
            "interval": p.interval,
            "interval_count": 1,
            "meter": p.meter,
            "usage_type": "metered" if p.meter else "licensed",
            "trial_period_days": None,
        },
        "tax_behavior": "exclusive",
        "tiers_mode": None,
        "transform_quantity": None,
        "type": "recurring",
        "unit_amount": p.unit_amount,
        "unit_amount_decimal": str(p.unit_amount),
    }


def plan_of(p) -> dict:
    """The legacy ``plan`` view of a price, still embedded in subscription items."""
    return {
        "id": p.id,
        "object": "plan",
        "active": p.active,
        "amount": p.unit_amount,
        "amount_decimal": str(p.unit_amount),
        "billing_scheme": "per_unit",
        "created": p.created,
        "currency": p.currency,
        "interval": p.interval,
        "interval_count": 1,
        "livemode": False,
        "metadata": dict(p.metadata),
        "meter": p.meter,
        "nickname": p.nickname,
        "product": p.product,
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "metered" if p.meter else "licensed",
    }


def subscription_item(item, sub, prices: dict) -> dict:
    found = prices[item.price]
    return {
        "id": item.id,
        "object": "subscription_item",
        "billing_thresholds": None,
        "created": item.created,
        "current_period_end": sub.period_end,
        "current_period_start": sub.period_start,
        "discounts": [],
        "metadata": {},
        "plan": plan_of(found),
        "price": price(found),
        "quantity": item.quantity,
        "subscription": sub.id,
        "tax_rates": [],
    }


def subscription(sub, prices: dict) -> dict:
    items = [subscription_item(item, sub, prices) for item in sub.items]
    return {
        "id": sub.id,
        "object": "subscription",
        "application": None,
        "application_fee_percent": None,
        "automatic_tax": dict(NO_AUTOMATIC_TAX),
        "billing_cycle_anchor": sub.billing_cycle_anchor,
        "billing_cycle_anchor_config": None,
        "billing_mode": {"type": "classic", "flexible": None},
        "billing_schedules": [],
        "billing_thresholds": None,
        "cancel_at": sub.period_end if sub.cancel_at_period_end else None,
        "cancel_at_period_end": sub.cancel_at_period_end,
        "canceled_at": sub.canceled_at,
        "cancellation_details": {"comment": None, "feedback": None, "reason": sub.cancellation_reason},
        "collection_method": "charge_automatically",
        "created": sub.created,
        "currency": sub.currency,
        "customer": sub.customer,
        "customer_account": None,
        "days_until_due": None,
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "ended_at": sub.ended_at,
        "invoice_settings": {
            "account_tax_ids": None,
            "custom_fields": None,
            "description": None,
            "footer": None,
            "issuer": LIABILITY,
        },
        "items": _listing(items, f"/v1/subscription_items?subscription={sub.id}"),
        "latest_invoice": sub.latest_invoice,
        "livemode": False,
        "managed_payments": None,
        "metadata": dict(sub.metadata),
        "next_pending_invoice_item_invoice": None,
        "on_behalf_of": None,
        "pause_collection": None,
        "payment_settings": {
            "payment_method_options": None,
            "payment_method_types": None,
            "save_default_payment_method": "off",
        },
        "pending_invoice_item_interval": None,
        "pending_setup_intent": None,
        "pending_update": None,
        "schedule": None,
        "start_date": sub.created,
        "status": sub.status,
        "test_clock": None,
        "transfer_data": None,
        "trial_end": None,
        "trial_settings": {"end_behavior": {"missing_payment_method": "create_invoice"}},
        "trial_start": None,
    }


def line_item(line, invoice) -> dict:
    return {
        "id": line.id,
        "object": "line_item",
        "amount": line.amount,
        "currency": invoice.currency,
        "description": line.description,
        "discount_amounts": [],
        "discountable": not line.proration,
        "discounts": [],
        "invoice": invoice.id,
        "livemode": False,
        "metadata": {},
        "parent": {
            "invoice_item_details": None,
            "subscription_item_details": {
                "invoice_item": line.invoice_item,
                "proration": line.proration,
                "proration_details": {"credited_items": None},
                "subscription": invoice.subscription,
                "subscription_item": line.subscription_item,
            },
            "type": "subscription_item_details",
        },
        "period": {"end": line.period_end, "start": line.period_start},
        "pretax_credit_amounts": [],
        "pricing": {"type": "price_details", "unit_amount_decimal": str(line.unit_amount)},
        "quantity": line.quantity,
        "quantity_decimal": str(line.quantity),
        "subscription": invoice.subscription,
        "subtotal": line.amount,
        "taxes": [],
    }


def invoice(inv, base_url: str) -> dict:
    lines = [line_item(line, inv) for line in inv.lines]
    finalized = inv.status != "draft"
    return {
        "id": inv.id,
        "object": "invoice",
        "account_country": "JP",
        "account_name": "Tsunagu (sandbox)",
        "account_tax_ids": None,
        "amount_due": inv.total,
        "amount_overpaid": 0,
        "amount_paid": inv.total if inv.status == "paid" else 0,
        "amount_remaining": 0 if inv.status == "paid" else inv.total,
        "amount_shipping": 0,
        "application": None,
        "attempt_count": inv.attempt_count,
        "attempted": inv.attempt_count > 0,
        "auto_advance": inv.status == "open",
        "automatic_tax": {**NO_AUTOMATIC_TAX, "status": None, "provider": None},
        "automatically_finalizes_at": None,
        "billing_reason": inv.billing_reason,
        "collection_method": "charge_automatically",
        "created": inv.created,
        "currency": inv.currency,
        "custom_fields": None,
        "customer": inv.customer,
        "customer_account": None,
        "customer_address": None,
        "customer_email": inv.customer_email,
        "customer_name": inv.customer_name,
        "customer_phone": None,
        "customer_shipping": None,
        "customer_tax_exempt": "none",
        "customer_tax_ids": [],
        "default_payment_method": None,
        "default_source": None,
        "default_tax_rates": [],
        "description": None,
        "discounts": [],
        "due_date": None,
        "effective_at": inv.created if finalized else None,
        "ending_balance": 0 if finalized else None,
        "footer": None,
        "from_invoice": None,
        "hosted_invoice_url": f"{base_url}/invoices/{inv.id}" if finalized else None,
        "invoice_pdf": f"{base_url}/invoices/{inv.id}/pdf" if finalized else None,
        "issuer": LIABILITY,
        "last_finalization_error": None,
        "latest_revision": None,
        "lines": _listing(lines, f"/v1/invoices/{inv.id}/lines"),
        "livemode": False,
        "metadata": {},
        "next_payment_attempt": inv.next_payment_attempt,
        "number": inv.number,
        "on_behalf_of": None,
        "parent": {
            "quote_details": None,
            "subscription_details": {"metadata": {}, "subscription": inv.subscription},
            "type": "subscription_details",
        },
        "payment_settings": {"default_mandate": None, "payment_method_options": None, "payment_method_types": None},
        "period_end": inv.period_end,
        "period_start": inv.period_start,
        "post_payment_credit_notes_amount": 0,
        "pre_payment_credit_notes_amount": 0,
        "receipt_number": None,
        "rendering": None,
        "shipping_cost": None,
        "shipping_details": None,
        "starting_balance": 0,
        "statement_descriptor": None,
        "status": inv.status,
        "status_transitions": {
            "finalized_at": inv.created if finalized else None,
            "marked_uncollectible_at": None,
            "paid_at": inv.paid_at,
            "voided_at": None,
        },
        "subscription": inv.subscription,
        "subtotal": inv.total,
        "subtotal_excluding_tax": inv.total,
        "test_clock": None,
        "total": inv.total,
        "total_discount_amounts": [],
        "total_excluding_tax": inv.total,
        "total_pretax_credit_amounts": [],
        "total_taxes": [],
        "webhooks_delivered_at": inv.created if finalized else None,
    }


def checkout_session(cs, base_url: str) -> dict:
    return {
        "id": cs.id,
        "object": "checkout.session",
        "adaptive_pricing": None,
        "after_expiration": None,
        "allow_promotion_codes": None,
        "amount_subtotal": cs.amount_total,
        "amount_total": cs.amount_total,
        "automatic_tax": {"enabled": False, "liability": None, "status": None, "provider": None},
        "billing_address_collection": None,
        "cancel_url": cs.cancel_url,
        "client_reference_id": cs.client_reference_id,
        "client_secret": None,
        "collected_information": None,
        "consent": None,
        "consent_collection": None,
        "created": cs.created,
        "currency": cs.currency,
        "currency_conversion": None,
        "custom_fields": [],
        "custom_text": {
            "after_submit": None,
            "shipping_address": None,
            "submit": None,
            "terms_of_service_acceptance": None,
        },
        "customer": cs.customer,
        "customer_account": None,
        "customer_creation": None if cs.customer else "always",
        "customer_details": {
            "address": None,
            "business_name": None,
            "email": cs.customer_email,
            "individual_name": None,
            "name": None,
            "phone": None,
            "tax_exempt": "none",
            "tax_ids": [],
        }
        if cs.status == "complete"
        else None,
        "customer_email": cs.customer_email,
        "discounts": [],
        "expires_at": cs.expires_at,
        "integration_identifier": None,
        "invoice": cs.invoice,
        "invoice_creation": None,
        "livemode": False,
        "locale": cs.locale,
        "managed_payments": None,
        "metadata": dict(cs.metadata),
        "mode": "subscription",
        "origin_context": None,
        "payment_intent": None,
        "payment_link": None,
        "payment_method_collection": "always",
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": ["card"],
        "payment_status": "paid" if cs.status == "complete" else "unpaid",
        "permissions": None,
        "phone_number_collection": {"enabled": False},
        "recovered_from": None,
        "saved_payment_method_options": None,
        "setup_intent": None,
        "shipping_address_collection": None,
        "shipping_cost": None,
        "shipping_options": [],
        "status": cs.status,
        "submit_type": None,
        "subscription": cs.subscription,
        "success_url": cs.success_url,
        "total_details": {"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
        "ui_mode": "hosted",
        "url": f"{base_url}/checkout/{cs.id}" if cs.status == "open" else None,
        "wallet_options": None,
    }


def portal_session(ps, base_url: str) -> dict:
    return {
        "id": ps.id,
        "object": "billing_portal.session",
        "configuration": "bpc_sandbox_default",
        "created": ps.created,
        "customer": ps.customer,
        "customer_account": None,
        "flow": None,
        "livemode": False,
        "locale": ps.locale,
        "on_behalf_of": None,
        "return_url": ps.return_url,
        "url": f"{base_url}/portal/{ps.id}",
    }


def event(e) -> dict:
    return {
        "id": e.id,
        "object": "event",
        "api_version": e.api_version,
        "created": e.created,
        "data": {"object": e.snapshot, **({"previous_attributes": e.previous} if e.previous else {})},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": e.type,
    }


def deleted(object_name: str, object_id: str) -> dict:
    return {"id": object_id, "object": object_name, "deleted": True}


def error(message: str, *, kind: str = "invalid_request_error", code: str | None = None, param: str | None = None):
    """Stripe's error body."""
    body = {"message": message, "type": kind}
    if code:
        body["code"] = code
        body["doc_url"] = f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}"
    if param:
        body["param"] = param
    return {"error": body}
