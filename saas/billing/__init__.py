"""Billing for the service with Stripe: a monthly subscription per agency or organization priced
per clinic, Checkout and the Customer Portal, signed webhooks handled once, and dunning that
pauses marketing sends but never what patients rely on. See README.md ("Billing").

``allows_marketing(clinic)`` is the one check marketing sends make (saas/delivery, steps).
"""

from __future__ import annotations


def allows_marketing(clinic) -> bool:
    """Whether the clinic may submit or plan a marketing send; see ``saas.billing.dunning``."""
    from saas.billing.dunning import allows_marketing as check

    return check(clinic)


class MarketingPaused(Exception):
    """A marketing send was refused: the account paying for the clinic has marketing paused."""

    message = "お支払いが確認できないため、一斉配信・セグメント配信・ステップ配信は一時停止中です（緊急のお知らせ・自動応答・チャット・予約・リマインドは通常どおりです）。"

    def __str__(self) -> str:
        return self.message
