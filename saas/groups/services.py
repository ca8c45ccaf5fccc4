"""Who may administer a shared level (platform, agency, organization), and authoring its library.

Only an owner or admin membership covering the level may: a platform membership covers every
level, an agency membership its agency and the organizations under it, an organization
membership that organization. Clinic memberships never do.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import sqlalchemy as sa

from saas.auth.roles import Role, Scope
from saas.autoreply.cache import bump_clinic
from saas.extensions import db
from saas.library.models import (
    LEVEL_LABELS,
    ClinicLibraryOverride,
    Level,
    LibraryItem,
    LibrarySet,
    LibrarySubscription,
    owner_key,
)
from saas.tenancy.models import Agency, Clinic, Organization
from saas.tenancy.scoping import platform_scope

MANAGING_ROLES = frozenset({Role.OWNER, Role.ADMIN})
PLATFORM_SLUG = "tsunagu"


@dataclass(frozen=True)
class SharedLevel:
    """The platform, one agency or one organization, as the owner of a shared library."""

    level: str
    slug: str
    name: str
    id: int | None = None
    agency_id: int | None = None  # an organization's agency

    @property
    def key(self) -> str:
        return owner_key(self.level, self.id)

    @property
    def label(self) -> str:
        return str(LEVEL_LABELS[self.level])


def _platform() -> SharedLevel:
    return SharedLevel(Level.PLATFORM, PLATFORM_SLUG, "Tsunagu")


def _of_agency(agency: Agency) -> SharedLevel:
    return SharedLevel(Level.AGENCY, agency.slug, agency.name, agency.id)


def _of_organization(organization: Organization) -> SharedLevel:
    return SharedLevel(
        Level.ORGANIZATION, organization.slug, organization.name, organization.id, organization.agency_id
    )


def find_level(level: str, slug: str) -> SharedLevel | None:
    """The shared level named in a URL, or None."""
    if level == Level.PLATFORM:
        return _platform() if slug == PLATFORM_SLUG else None
    model = {Level.AGENCY: Agency, Level.ORGANIZATION: Organization}.get(level)
    row = db.session.scalars(sa.select(model).where(model.slug == slug)).first() if model else None
    if row is None:
        return None
    return _of_agency(row) if level == Level.AGENCY else _of_organization(row)


def level_of_clinic(clinic, level: str) -> SharedLevel | None:
    """The platform, agency or organization above a clinic at ``level``."""
    if level == Level.PLATFORM:
        return _platform()
    if level == Level.AGENCY:
        agency = clinic.organization.agency
        return _of_agency(agency) if agency else None
    if level == Level.ORGANIZATION:
        return _of_organization(clinic.organization)
    return None


def _covers(membership, shared: SharedLevel) -> bool:
    if membership.role not in MANAGING_ROLES:
        return False
    if membership.scope == Scope.PLATFORM:
        return True
    if membership.scope == Scope.AGENCY:
        return (shared.level == Level.AGENCY and shared.id == membership.agency_id) or (
            shared.level == Level.ORGANIZATION
            and shared.agency_id is not None
            and shared.agency_id == membership.agency_id
        )
    if membership.scope == Scope.ORGANIZATION:
        return shared.level == Level.ORGANIZATION and shared.id == membership.organization_id
    return False


def can_manage(user, shared: SharedLevel | None) -> bool:
    """Whether the user holds an owner/admin membership covering this shared level."""
    if shared is None or not user.is_authenticated:
        return False
    return any(_covers(membership, shared) for membership in user.memberships)


def managed_levels(user) -> list[SharedLevel]:
    """The shared levels the user administers directly (for links on the home page)."""
    levels: list[SharedLevel] = []
    for membership in user.memberships:
        if membership.role not in MANAGING_ROLES:
            continue
        if membership.scope == Scope.PLATFORM:
            levels.append(_platform())
        elif membership.scope == Scope.AGENCY:
            agency = db.session.get(Agency, membership.agency_id)
            levels += [_of_agency(agency), *(_of_organization(o) for o in agency.organizations)]
        elif membership.scope == Scope.ORGANIZATION:
            levels.append(_of_organization(db.session.get(Organization, membership.organization_id)))
    return list(dict.fromkeys(levels))


def clinic_ids_below(shared: SharedLevel) -> list[int]:
    """Clinics that inherit this level's library."""
    query = sa.select(Clinic.id).join(Organization)
    if shared.level == Level.AGENCY:
        query = query.where(Organization.agency_id == shared.id)
    elif shared.level == Level.ORGANIZATION:
        query = query.where(Clinic.organization_id == shared.id)
    return list(db.session.scalars(query))


def _mark_answers_stale(shared: SharedLevel) -> None:
    for clinic_id in clinic_ids_below(shared):
        bump_clinic(clinic_id, on_commit=True)


def owned_sets(shared: SharedLevel) -> list[LibrarySet]:
    return list(db.session.scalars(sa.select(LibrarySet).where(LibrarySet.owner == shared.key).order_by(LibrarySet.id)))


def owned_items(shared: SharedLevel) -> list[LibraryItem]:
    """This level's items, in its own sets and as overrides in sets of the levels above."""
    query = sa.select(LibraryItem).where(LibraryItem.owner == shared.key)
    return list(db.session.scalars(query.order_by(LibraryItem.set_id, LibraryItem.position, LibraryItem.id)))


def owned_set(shared: SharedLevel, set_id: int) -> LibrarySet | None:
    library_set = db.session.get(LibrarySet, set_id)
    return library_set if library_set is not None and library_set.owner == shared.key else None


def owned_item(shared: SharedLevel, set_id: int, item_key: str) -> LibraryItem | None:
    query = sa.select(LibraryItem).where(
        LibraryItem.set_id == set_id, LibraryItem.item_key == item_key, LibraryItem.owner == shared.key
    )
    return db.session.scalars(query).first()


def create_set(shared: SharedLevel, kind: str, name: str, description: str = "") -> LibrarySet:
    key = f"{shared.level}-{shared.id or 0}-{secrets.token_hex(4)}"
    library_set = LibrarySet(key=key, kind=kind, name=name, description=description, owner=shared.key)
    db.session.add(library_set)
    db.session.flush()
    return library_set


def update_set(shared: SharedLevel, library_set: LibrarySet, name: str, description: str) -> None:
    library_set.name, library_set.description = name, description
    _mark_answers_stale(shared)


def delete_set(shared: SharedLevel, library_set: LibrarySet) -> None:
    """Remove the set with its items, and every clinic's subscription to and overrides of it."""
    with platform_scope("shared library set deleted by its owner level"):
        for model in (LibrarySubscription, ClinicLibraryOverride):
            db.session.execute(sa.delete(model).where(model.set_id == library_set.id))
    db.session.delete(library_set)
    _mark_answers_stale(shared)


def save_item(shared: SharedLevel, set_id: int, item: LibraryItem | None, **fields) -> LibraryItem:
    """Create (item None) or update one of this level's items."""
    if item is None:
        position = db.session.scalar(sa.select(sa.func.count()).where(LibraryItem.set_id == set_id)) or 0
        item = LibraryItem(set_id=set_id, owner=shared.key, item_key=secrets.token_hex(4), position=position)
        db.session.add(item)
    for name, value in fields.items():
        setattr(item, name, value)
    db.session.flush()
    _mark_answers_stale(shared)
    return item


def delete_item(shared: SharedLevel, item: LibraryItem) -> None:
    db.session.delete(item)
    _mark_answers_stale(shared)


def branches_of(organization_id: int) -> list[Clinic]:
    """The organization's branches (clinics), by name."""
    return list(
        db.session.scalars(sa.select(Clinic).where(Clinic.organization_id == organization_id).order_by(Clinic.name))
    )
