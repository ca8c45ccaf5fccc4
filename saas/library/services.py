"""Which library items a clinic sees, where each comes from, and the clinic's overrides.

Resolution order for an item key: clinic override > organization > agency > platform.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import yaml

from saas.extensions import db
from saas.library.models import (
    LEVEL_RANK,
    ClinicLibraryOverride,
    Level,
    LibraryItem,
    LibrarySet,
    LibrarySubscription,
    SetKind,
    owner_key,
)

DATA_DIR = Path(__file__).parent / "data"


@dataclass
class ResolvedItem:
    """An item as the clinic sees it, with the level it comes from."""

    library_set: LibrarySet
    item_key: str
    title: str
    category: str
    keywords: list[str]
    body: str
    computed: str
    level: str
    inherited_from: str  # the level the clinic would fall back to on revert
    disabled: bool = False
    position: int = 0

    @property
    def overridden(self) -> bool:
        return self.level == Level.CLINIC


def visible_owners(clinic) -> dict[str, str]:
    """owner_key → level, for the owners whose library this clinic inherits."""
    owners = {owner_key(Level.PLATFORM): Level.PLATFORM}
    if clinic.agency_id:
        owners[owner_key(Level.AGENCY, clinic.agency_id)] = Level.AGENCY
    owners[owner_key(Level.ORGANIZATION, clinic.organization_id)] = Level.ORGANIZATION
    return owners


def visible_sets(clinic, kind: str | None = None) -> list[LibrarySet]:
    """Sets defined by the platform, the clinic's agency or its organization."""
    query = sa.select(LibrarySet).where(LibrarySet.owner.in_(visible_owners(clinic))).order_by(LibrarySet.id)
    if kind:
        query = query.where(LibrarySet.kind == kind)
    return list(db.session.scalars(query))


def subscribed_set_ids(clinic_id: int) -> set[int]:
    return set(
        db.session.scalars(sa.select(LibrarySubscription.set_id).where(LibrarySubscription.clinic_id == clinic_id))
    )


def resolve_items(clinic, sets: list[LibrarySet]) -> list[ResolvedItem]:
    """Every item of ``sets`` as this clinic sees it, most specific level winning."""
    if not sets:
        return []
    owners = visible_owners(clinic)
    set_by_id = {s.id: s for s in sets}
    rows = db.session.scalars(
        sa.select(LibraryItem).where(LibraryItem.set_id.in_(set_by_id), LibraryItem.owner.in_(owners))
    )
    best: dict[tuple[int, str], ResolvedItem] = {}
    for row in rows:
        level = owners[row.owner]
        key = (row.set_id, row.item_key)
        current = best.get(key)
        if current is None or LEVEL_RANK[level] > LEVEL_RANK[current.level]:
            best[key] = ResolvedItem(
                set_by_id[row.set_id], row.item_key, row.title, row.category, list(row.keywords or []),
                row.body, row.computed, level, level, position=row.position,
            )  # fmt: skip
    _apply_overrides(clinic.id, best)
    return sorted(best.values(), key=lambda item: (item.library_set.id, item.position, item.item_key))


def _apply_overrides(clinic_id: int, best: dict[tuple[int, str], ResolvedItem]) -> None:
    set_ids = {set_id for set_id, _ in best}
    overrides = db.session.scalars(
        sa.select(ClinicLibraryOverride).where(
            ClinicLibraryOverride.clinic_id == clinic_id, ClinicLibraryOverride.set_id.in_(set_ids)
        )
    )
    for override in overrides:
        item = best.get((override.set_id, override.item_key))
        if item is None:
            continue
        item.level = Level.CLINIC
        item.title = override.title or item.title
        item.keywords = list(override.keywords or []) or item.keywords
        item.body = override.body or item.body
        item.disabled = override.disabled


def faq_items_for_answering(clinic) -> list[ResolvedItem]:
    """Enabled items of the FAQ sets the clinic subscribes to."""
    subscribed = subscribed_set_ids(clinic.id)
    sets = [s for s in visible_sets(clinic, SetKind.FAQ) if s.id in subscribed]
    return [item for item in resolve_items(clinic, sets) if not item.disabled]


def set_override(clinic, set_id: int, item_key: str, **fields) -> ClinicLibraryOverride:
    """Create or update the clinic's own version of an item."""
    override = db.session.scalars(
        sa.select(ClinicLibraryOverride).where(
            ClinicLibraryOverride.clinic_id == clinic.id,
            ClinicLibraryOverride.set_id == set_id,
            ClinicLibraryOverride.item_key == item_key,
        )
    ).first()
    if override is None:
        override = ClinicLibraryOverride(clinic_id=clinic.id, set_id=set_id, item_key=item_key)
        db.session.add(override)
    for name, value in fields.items():
        setattr(override, name, value)
    return override


def revert_override(clinic, set_id: int, item_key: str) -> bool:
    """Drop the clinic's version: the inherited item applies again."""
    result = db.session.execute(
        sa.delete(ClinicLibraryOverride).where(
            ClinicLibraryOverride.clinic_id == clinic.id,
            ClinicLibraryOverride.set_id == set_id,
            ClinicLibraryOverride.item_key == item_key,
        )
    )
    from saas.autoreply.cache import bump_clinic

    bump_clinic(clinic.id, on_commit=True)
    return result.rowcount > 0


def set_subscription(clinic, set_id: int, subscribed: bool) -> None:
    """Start or stop answering patients with a FAQ set."""
    existing = db.session.scalars(
        sa.select(LibrarySubscription).where(
            LibrarySubscription.clinic_id == clinic.id, LibrarySubscription.set_id == set_id
        )
    ).first()
    if subscribed and existing is None:
        db.session.add(LibrarySubscription(clinic_id=clinic.id, set_id=set_id))
    elif not subscribed and existing is not None:
        db.session.delete(existing)


def get_set_by_key(key: str) -> LibrarySet | None:
    return db.session.scalars(sa.select(LibrarySet).where(LibrarySet.key == key)).first()


def load_data_file(path: Path, owner: str = Level.PLATFORM) -> tuple[LibrarySet, int]:
    """Create or update a set and its items from a YAML data file; returns the set and items changed."""
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    library_set = get_set_by_key(data["key"]) or LibrarySet(key=data["key"], owner=owner)
    library_set.kind, library_set.name = data["kind"], data["name"]
    library_set.description = data.get("description", "")
    db.session.add(library_set)
    db.session.flush()
    existing = {i.item_key: i for i in library_set.items if i.owner == owner}
    changed = 0
    for position, spec in enumerate(data["items"]):
        item = existing.get(spec["key"]) or LibraryItem(set_id=library_set.id, item_key=spec["key"], owner=owner)
        fields = {
            "position": position,
            "title": spec["title"],
            "category": spec.get("category", ""),
            "keywords": spec.get("keywords", []),
            "body": spec.get("body", "").rstrip("\n"),
            "computed": spec.get("computed", ""),
        }
        if item.id is None or any(getattr(item, k) != v for k, v in fields.items()):
            changed += 1
            for name, value in fields.items():
                setattr(item, name, value)
            db.session.add(item)
    db.session.flush()
    return library_set, changed


def load_standard_library() -> list[tuple[LibrarySet, int]]:
    """Load (or refresh) the shipped platform FAQ set and seasonal templates."""
    return [load_data_file(path) for path in sorted(DATA_DIR.glob("*.yaml"))]


def ensure_standard_library() -> None:
    """Load the shipped library on demand, once."""
    keys = {yaml.safe_load(p.read_text(encoding="utf-8"))["key"] for p in DATA_DIR.glob("*.yaml")}
    present = set(db.session.scalars(sa.select(LibrarySet.key).where(LibrarySet.key.in_(keys))))
    if present != keys:
        load_standard_library()
