"""Who pays for a clinic, which clinics an account counts, and who may manage an account.

An organization with a subscription of its own pays for its clinics; every other clinic under an
agency is paid for by the agency's subscription. So an agency's quantity counts the clinics of
its organizations that do not pay themselves, and no clinic is ever counted twice.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from saas.auth.roles import PERMISSIONS, Scope
from saas.billing.models import BillingAccount
from saas.extensions import db
from saas.tenancy.models import Agency, Clinic, Organization

LEVELS = ("agency", "organization")


@dataclass(frozen=True)
class Payer:
    """An agency or an organization that can hold a subscription."""

    level: str
    id: int
    slug: str
    name: str
    agency_id: int | None = None  # an organization's agency


def find_payer(level: str, slug: str) -> Payer | None:
    """The agency or organization named in a URL, or None."""
    model = {"agency": Agency, "organization": Organization}.get(level)
    row = db.session.scalars(sa.select(model).where(model.slug == slug)).first() if model else None
    if row is None:
        return None
    return Payer(level, row.id, row.slug, row.name, getattr(row, "agency_id", None))


def payer_of_account(account: BillingAccount) -> Payer:
    if account.agency_id is not None:
        agency = db.session.get(Agency, account.agency_id)
        return Payer("agency", agency.id, agency.slug, agency.name)
    organization = db.session.get(Organization, account.organization_id)
    return Payer("organization", organization.id, organization.slug, organization.name, organization.agency_id)


def account_of(payer: Payer) -> BillingAccount | None:
    column = BillingAccount.agency_id if payer.level == "agency" else BillingAccount.organization_id
    return db.session.scalars(sa.select(BillingAccount).where(column == payer.id)).first()


def _self_paying_organizations():
    """Organizations whose own account has a subscription (their clinics leave the agency's count)."""
    return sa.select(BillingAccount.organization_id).where(
        BillingAccount.organization_id.is_not(None), BillingAccount.stripe_subscription_id.is_not(None)
    )


def counted_clinics_statement(payer: Payer) -> sa.Select:
    """The clinics this payer's subscription is charged for."""
    if payer.level == "organization":
        return sa.select(Clinic).where(Clinic.organization_id == payer.id)
    return (
        sa.select(Clinic)
        .join(Organization, Clinic.organization_id == Organization.id)
        .where(Organization.agency_id == payer.id, Organization.id.not_in(_self_paying_organizations()))
    )


def counted_clinics(payer: Payer) -> list[Clinic]:
    return list(db.session.scalars(counted_clinics_statement(payer).order_by(Clinic.name)))


def clinic_count(payer: Payer) -> int:
    statement = counted_clinics_statement(payer).with_only_columns(sa.func.count(Clinic.id))
    return db.session.scalar(statement) or 0


def account_for_organization(organization_id: int) -> BillingAccount | None:
    """The subscribed account paying for this organization's clinics (its own, else its agency's); one query."""
    agency_of = sa.select(Organization.agency_id).where(Organization.id == organization_id).scalar_subquery()
    statement = (
        sa.select(BillingAccount)
        .where(
            BillingAccount.stripe_subscription_id.is_not(None),
            sa.or_(BillingAccount.organization_id == organization_id, BillingAccount.agency_id == agency_of),
        )
        .order_by(BillingAccount.organization_id.is_(None))  # the organization's own account first
        .limit(1)
    )
    return db.session.scalars(statement).first()


def account_for_clinic(clinic: Clinic) -> BillingAccount | None:
    return account_for_organization(clinic.organization_id)


def _covers(membership, payer: Payer) -> bool:
    if membership.scope == Scope.AGENCY:
        return membership.agency_id == (payer.id if payer.level == "agency" else payer.agency_id)
    if membership.scope == Scope.ORGANIZATION:
        return payer.level == "organization" and membership.organization_id == payer.id
    return False


def can_manage(user, payer: Payer | None) -> bool:
    """Owners and admins (``billing.manage``) of the paying agency or organization; clinic and
    platform memberships never manage a customer's billing."""
    if payer is None or not getattr(user, "is_authenticated", False):
        return False
    granted = PERMISSIONS["billing.manage"]
    return any(m.role in granted and _covers(m, payer) for m in user.memberships)


def managers(payer: Payer) -> list:
    """Users who may manage this payer's billing (they receive the dunning mail)."""
    from saas.auth.models import Membership, User

    scope_filter = (
        sa.and_(Membership.scope == Scope.AGENCY, Membership.agency_id == payer.id)
        if payer.level == "agency"
        else sa.or_(
            sa.and_(Membership.scope == Scope.ORGANIZATION, Membership.organization_id == payer.id),
            sa.and_(Membership.scope == Scope.AGENCY, Membership.agency_id == payer.agency_id),
        )
    )
    statement = (
        sa.select(User)
        .join(Membership, Membership.user_id == User.id)
        .where(scope_filter, Membership.role.in_(list(PERMISSIONS["billing.manage"])), User.is_active_account)
        .distinct()
    )
    return list(db.session.scalars(statement))


def payers_managed_by(user) -> list[Payer]:
    """Every agency and organization whose billing this user may manage (for links)."""
    found = []
    for membership in user.memberships:
        if membership.role not in PERMISSIONS["billing.manage"]:
            continue
        if membership.scope == Scope.AGENCY:
            agency = db.session.get(Agency, membership.agency_id)
            found.append(Payer("agency", agency.id, agency.slug, agency.name))
        elif membership.scope == Scope.ORGANIZATION:
            organization = db.session.get(Organization, membership.organization_id)
            found.append(
                Payer("organization", organization.id, organization.slug, organization.name, organization.agency_id)
            )
    return found
