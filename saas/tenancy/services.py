"""Which clinics a user may see, and with which roles."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import joinedload

from saas.auth.models import Membership, User
from saas.auth.roles import Scope
from saas.extensions import db
from saas.tenancy.models import Agency, Clinic, Organization


def _visible_clinics_statement(user: User) -> sa.Select:
    memberships = user.memberships
    if any(m.scope == Scope.PLATFORM for m in memberships):
        return sa.select(Clinic)
    agency_ids = {m.agency_id for m in memberships if m.scope == Scope.AGENCY}
    organization_ids = {m.organization_id for m in memberships if m.scope == Scope.ORGANIZATION}
    clinic_ids = {m.clinic_id for m in memberships if m.scope == Scope.CLINIC}
    return (
        sa.select(Clinic)
        .join(Organization)
        .where(
            sa.or_(
                Organization.agency_id.in_(agency_ids),
                Clinic.organization_id.in_(organization_ids),
                Clinic.id.in_(clinic_ids),
            )
        )
    )


def visible_clinics(user: User) -> list[Clinic]:
    """Every clinic the user's memberships reach, ordered by organization then name."""
    statement = _visible_clinics_statement(user).order_by(Clinic.organization_id, Clinic.name)
    # Loaded with their organization and agency: the sidebar names them for every clinic of every page.
    statement = statement.options(joinedload(Clinic.organization).joinedload(Organization.agency))
    return list(db.session.scalars(statement))


def visible_clinic_ids(user: User) -> frozenset[int]:
    statement = _visible_clinics_statement(user).with_only_columns(Clinic.id)
    return frozenset(db.session.scalars(statement))


def get_visible_clinic(user: User, slug: str) -> Clinic | None:
    """The clinic with that slug if the user may see it; None (a 404) otherwise."""
    statement = _visible_clinics_statement(user).where(Clinic.slug == slug)
    return db.session.scalars(statement).first()


def roles_at(user: User, clinic: Clinic) -> set[str]:
    """The user's roles that apply at this clinic, from every scope above it."""
    return {m.role for m in user.memberships if m.covers(clinic)}


def get_clinic_by_webhook_key(webhook_key: str) -> Clinic | None:
    return db.session.scalars(sa.select(Clinic).where(Clinic.webhook_key == webhook_key)).first()


def get_clinic_by_slug(slug: str) -> Clinic | None:
    return db.session.scalars(sa.select(Clinic).where(Clinic.slug == slug)).first()


def navigation_tree(user: User) -> list[dict]:
    """Agency → organization → clinic groups for the sidebar, limited to what the user sees."""
    groups: dict[tuple, dict] = {}
    for clinic in visible_clinics(user):
        organization = clinic.organization
        agency: Agency | None = organization.agency
        key = (agency.id if agency else 0, organization.id)
        group = groups.setdefault(key, {"agency": agency, "organization": organization, "clinics": []})
        group["clinics"].append(clinic)
    return sorted(groups.values(), key=lambda g: ((g["agency"].name if g["agency"] else ""), g["organization"].name))


def add_membership(
    user: User,
    role: str,
    *,
    agency: Agency | None = None,
    organization: Organization | None = None,
    clinic: Clinic | None = None,
) -> Membership:
    """Grant a role at the narrowest scope given (platform when none is)."""
    if clinic is not None:
        membership = Membership(role=role, scope=Scope.CLINIC, clinic_id=clinic.id)
    elif organization is not None:
        membership = Membership(role=role, scope=Scope.ORGANIZATION, organization_id=organization.id)
    elif agency is not None:
        membership = Membership(role=role, scope=Scope.AGENCY, agency_id=agency.id)
    else:
        membership = Membership(role=role, scope=Scope.PLATFORM)
    user.memberships.append(membership)
    return membership
