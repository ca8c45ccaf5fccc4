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


SIDEBAR_CLINICS = 20  # beyond this the sidebar shows the current organization and a search


def visible_clinics(user: User, *, search: str = "", limit: int | None = None, organization_id=None) -> list[Clinic]:
    """The clinics the user's memberships reach (whose name or slug contains ``search``, of one
    organization, at most ``limit``), ordered by organization then name."""
    statement = _visible_clinics_statement(user).order_by(Clinic.organization_id, Clinic.name).limit(limit)
    if search:
        needle = search.strip().lower()
        statement = statement.where(
            sa.or_(
                sa.func.lower(Clinic.name).contains(needle, autoescape=True),
                sa.func.lower(Clinic.slug).contains(needle, autoescape=True),
            )
        )
    if organization_id is not None:
        statement = statement.where(Clinic.organization_id == organization_id)
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


def navigation_tree(user: User, search: str = "") -> list[dict]:
    """Agency → organization → clinic groups of every clinic the user sees (whose name or slug
    contains ``search``)."""
    return _grouped(visible_clinics(user, search=search))


def sidebar(user: User, current: Clinic | None) -> dict:
    """The sidebar's and switcher's clinics: all of them up to SIDEBAR_CLINICS. An agency's staff
    seeing more get the current clinic's organization (else the first SIDEBAR_CLINICS) and
    ``total``, for a search and a link to the full list, instead of a tree of a thousand links."""
    statement = _visible_clinics_statement(user).add_columns(sa.func.count().over())  # the total, in the same query
    statement = statement.order_by(Clinic.organization_id, Clinic.name).limit(SIDEBAR_CLINICS + 1)
    rows = db.session.execute(statement.options(joinedload(Clinic.organization).joinedload(Organization.agency))).all()
    clinics, total = [clinic for clinic, _ in rows], rows[0][1] if rows else 0
    if total <= SIDEBAR_CLINICS:
        return {"groups": _grouped(clinics), "total": total, "cut": False}
    if current is not None:
        clinics = visible_clinics(user, organization_id=current.organization_id, limit=SIDEBAR_CLINICS)
        if current not in clinics:
            clinics.append(current)
    else:
        clinics = clinics[:SIDEBAR_CLINICS]
    return {"groups": _grouped(clinics), "total": total, "cut": True}


def _grouped(clinics: list[Clinic]) -> list[dict]:
    groups: dict[tuple, dict] = {}
    for clinic in clinics:
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
