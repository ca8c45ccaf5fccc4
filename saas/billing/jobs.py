"""RQ jobs of billing: a payer's subscription quantity after its clinics changed, and the
periodic dunning sweep (saas/cron.py). Both are safe to run twice: they set, never add."""

from __future__ import annotations

import logging

import sqlalchemy as sa
import stripe

from saas.billing import accounts, dunning, gateway, services
from saas.billing.models import BillingAccount
from saas.extensions import db
from saas.jobs import job

log = logging.getLogger(__name__)


@job
def sync_organization_quantity(organization_id: int) -> bool:
    """The subscription paying for this organization's clinics gets quantity = its clinics, prorated."""
    if not gateway.is_configured():
        return False
    account = accounts.account_for_organization(organization_id)
    if account is None:
        return False
    changed = services.sync_quantity(account)
    db.session.commit()
    return changed


@job
def sweep_billing() -> int:
    """Dunning steps whose time has come, and quantities that drifted (a lost job); returns accounts seen."""
    if not gateway.is_configured():
        return 0
    ids = db.session.scalars(sa.select(BillingAccount.id).where(BillingAccount.stripe_subscription_id.is_not(None)))
    seen = 0
    for account_id in list(ids):
        account = db.session.get(BillingAccount, account_id)
        dunning.advance(account)
        try:
            if account.quantity != max(accounts.clinic_count(accounts.payer_of_account(account)), 1):
                services.sync_quantity(account)
        except stripe.StripeError as error:
            log.warning("billing: quantity of account %s not synced: %s", account_id, error)
        db.session.commit()
        seen += 1
    return seen
