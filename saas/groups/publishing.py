"""Publishing to every branch (法人本部 → 各院): a template or scenario of the shared library, or a
coupon or scenario one branch made, copied into the chosen branches as their own rows.

Each branch's copy remembers its content as HQ last wrote it (``PublishedCopy.base``). Publishing
again compares three versions per branch — HQ's new one, the copy as HQ left it, the copy now — and
shows what will change; a branch that edited its copy keeps its edits unless the HQ administrator
ticks 上書き for that branch. Nothing is ever overwritten silently.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa
import yaml
from pydantic import ValidationError

from saas.common import utcnow
from saas.coupons import manifest as coupon_manifest
from saas.coupons.models import Coupon
from saas.extensions import db
from saas.friends import services as friends
from saas.groups import copies
from saas.groups.models import GroupPublication, PublishedCopy, PublishKind
from saas.library import services as library
from saas.library.models import LEVEL_RANK, ClinicLibraryOverride, Level, LibraryItem, LibrarySet, SetKind, owner_key
from saas.manifests.schema import ScenarioSpec
from saas.steps import manifest as scenario_manifest
from saas.steps.models import StepScenario
from saas.tenancy.models import Clinic, Organization
from saas.tenancy.scoping import tenant_scope


@dataclass(frozen=True)
class Source:
    """Something HQ can publish: where it comes from, and its content now."""

    kind: str
    ref: str  # library:<set id>:<item key> | coupon:<clinic id>:<id> | scenario:<clinic id>:<id>
    title: str
    origin: str  # where it comes from, in words
    content: dict
    branch_id: int | None = None  # a branch's own coupon or scenario: that branch (not published back to it)


@dataclass
class BranchPlan:
    """What publishing would do in one branch."""

    clinic: Clinic
    state: str  # new | unchanged | update | edited | missing
    changes: list[tuple[str, str, str]] = field(default_factory=list)  # (field, now, after)
    copy: PublishedCopy | None = None

    @property
    def needs_overwrite(self) -> bool:
        """The branch changed (or removed) its copy since HQ last wrote it."""
        return self.state in ("edited", "missing")


# ---- what can be published -----------------------------------------------------------------------


def _owners(organization: Organization) -> dict[str, str]:
    owners = {owner_key(Level.PLATFORM): Level.PLATFORM}
    if organization.agency_id:
        owners[owner_key(Level.AGENCY, organization.agency_id)] = Level.AGENCY
    owners[owner_key(Level.ORGANIZATION, organization.id)] = Level.ORGANIZATION
    return owners


def _library_items(organization: Organization, kind: str) -> list[tuple[LibrarySet, LibraryItem]]:
    """The organization's view of the library: the most specific level's version of each item."""
    owners = _owners(organization)
    rows = db.session.execute(
        sa.select(LibrarySet, LibraryItem)
        .join(LibraryItem, LibraryItem.set_id == LibrarySet.id)
        .where(LibrarySet.kind == kind, LibrarySet.owner.in_(owners), LibraryItem.owner.in_(owners))
        .order_by(LibrarySet.id, LibraryItem.position, LibraryItem.id)
    ).all()
    best: dict[tuple[int, str], tuple[LibrarySet, LibraryItem]] = {}
    for library_set, item in rows:
        current = best.get((library_set.id, item.item_key))
        if current is None or LEVEL_RANK[owners[item.owner]] > LEVEL_RANK[owners[current[1].owner]]:
            best[(library_set.id, item.item_key)] = (library_set, item)
    return list(best.values())


def _library_scenario(item: LibraryItem) -> dict | None:
    try:
        body = yaml.safe_load(item.body or "") or {}
        return copies.scenario_content(ScenarioSpec(key=item.item_key, name=item.title, **body))
    except (yaml.YAMLError, TypeError, ValidationError):
        return None


def _library_sources(organization: Organization) -> list[Source]:
    library.ensure_standard_library()
    found = []
    for library_set, item in _library_items(organization, SetKind.TEMPLATE):
        found.append(Source(PublishKind.TEMPLATE, f"library:{library_set.id}:{item.item_key}", item.title,
                            library_set.name, copies.template_content(item.title, item.body)))  # fmt: skip
    for library_set, item in _library_items(organization, SetKind.SCENARIO):
        content = _library_scenario(item)
        if content is not None:
            ref = f"library:{library_set.id}:{item.item_key}"
            found.append(Source(PublishKind.SCENARIO, ref, item.title, library_set.name, content))
    return found


def _branch_sources(branch: Clinic) -> list[Source]:
    """The coupons and scenarios a branch made itself (not copies HQ wrote into it)."""
    with tenant_scope(branch.id):
        copied = {(c.kind, c.target_id) for c in db.session.scalars(sa.select(PublishedCopy))}
        tag_names = {tag.id: tag.name for tag in friends.clinic_tags()}
        found = []
        for coupon in db.session.scalars(sa.select(Coupon).where(Coupon.status != "closed").order_by(Coupon.id)):
            if (PublishKind.COUPON, coupon.id) not in copied:
                content = copies.coupon_content(coupon_manifest.coupon_spec(coupon, tag_names))
                found.append(Source(PublishKind.COUPON, f"coupon:{branch.id}:{coupon.id}", coupon.title,
                                    branch.name, content, branch.id))  # fmt: skip
        for scenario in db.session.scalars(sa.select(StepScenario).order_by(StepScenario.id)):
            if (PublishKind.SCENARIO, scenario.id) not in copied:
                content = copies.scenario_content(scenario_manifest.scenario_spec(scenario))
                found.append(Source(PublishKind.SCENARIO, f"scenario:{branch.id}:{scenario.id}", scenario.name,
                                    branch.name, content, branch.id))  # fmt: skip
        return found


def sources(organization: Organization, branches: list[Clinic]) -> list[Source]:
    """Everything the organization's HQ may publish: its view of the library, its branches' own rows."""
    found = _library_sources(organization)
    for branch in branches:
        found += _branch_sources(branch)
    return found


def find_source(organization: Organization, branches: list[Clinic], ref: str, kind: str) -> Source | None:
    """One source by reference; None when it is not this organization's to publish (another's: 404)."""
    return next((s for s in sources(organization, branches) if s.ref == ref and s.kind == kind), None)


# ---- what publishing would do --------------------------------------------------------------------


def flatten(value, path: str = "") -> dict[str, str]:
    """Nested content as field paths → shown values: steps[0].messages[0] → 'こんにちは'."""
    if isinstance(value, dict):
        items = {}
        for key, inner in value.items():
            items |= flatten(inner, f"{path}.{key}" if path else str(key))
        return items or {path: "{}"}
    if isinstance(value, list):
        items = {}
        for index, inner in enumerate(value):
            items |= flatten(inner, f"{path}[{index}]")
        return items or {path: "—"}
    return {path: "—" if value in (None, "") else str(value)}


def diff(before: dict | None, after: dict) -> list[tuple[str, str, str]]:
    """(field, before, after) for each field that differs."""
    old, new = flatten(before or {}), flatten(after)
    return [(name, old.get(name, "—"), new.get(name, "—")) for name in dict.fromkeys([*new, *old]) if
            old.get(name, "—") != new.get(name, "—")]  # fmt: skip


def publication_for(organization: Organization, source: Source) -> GroupPublication | None:
    query = sa.select(GroupPublication).filter_by(organization_id=organization.id, kind=source.kind, source=source.ref)
    return db.session.scalars(query).first()


def plan_branch(branch: Clinic, source: Source, publication: GroupPublication | None) -> BranchPlan:
    """Compare HQ's content with the branch's copy as HQ last wrote it and as it is now."""
    with tenant_scope(branch.id):
        copy = None
        if publication is not None:
            copy = db.session.scalars(sa.select(PublishedCopy).filter_by(publication_id=publication.id)).first()
        if copy is None:
            return BranchPlan(branch, "new", diff(None, source.content))
        now = copies.read(copy.kind, copy.target_id, source.ref)
    if now is None:
        return BranchPlan(branch, "missing", diff(None, source.content), copy)
    if now == source.content:
        return BranchPlan(branch, "unchanged", [], copy)
    return BranchPlan(branch, "update" if now == copy.base else "edited", diff(now, source.content), copy)


def plan(branches: list[Clinic], source: Source, publication: GroupPublication | None) -> list[BranchPlan]:
    return [plan_branch(branch, source, publication) for branch in branches]


# ---- publishing ----------------------------------------------------------------------------------


@dataclass
class Result:
    written: list[str] = field(default_factory=list)  # branch names
    kept: list[str] = field(default_factory=list)  # edited in the branch, not overwritten
    unchanged: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (branch, why)


def publish(organization, source: Source, plans: list[BranchPlan], overwrite: set[int], actor) -> tuple:
    """Write the copies; a branch's own edits only where ``overwrite`` names it. Commits.

    Returns (publication, result)."""
    publication = publication_for(organization, source)
    if publication is None:
        publication = GroupPublication(organization_id=organization.id, kind=source.kind, source=source.ref, version=0)
        db.session.add(publication)
    publication.title, publication.content = source.title[:200], source.content
    publication.version += 1
    publication.published_by_email = getattr(actor, "email", "")
    publication.updated_at = utcnow()
    db.session.flush()
    result = Result()
    for branch_plan in plans:
        _publish_to(branch_plan, publication, source, overwrite, result)
    db.session.commit()
    return publication, result


def _publish_to(branch_plan: BranchPlan, publication, source: Source, overwrite: set[int], result: Result) -> None:
    branch = branch_plan.clinic
    if branch_plan.state == "unchanged":
        result.unchanged.append(branch.name)
        return
    if branch_plan.needs_overwrite and branch.id not in overwrite:
        result.kept.append(branch.name)
        return
    with tenant_scope(branch.id):
        copy = db.session.get(PublishedCopy, branch_plan.copy.id) if branch_plan.copy else None
        target = copy.target_id if copy is not None and branch_plan.state != "missing" else None
        try:
            with db.session.begin_nested():
                target_id = copies.write(branch, source.kind, source.ref, source.content, target, _key(publication))
                base = copies.read(source.kind, target_id, source.ref)
        except copies.CopyProblem as problem:
            result.problems.append((branch.name, str(problem)))
            return
        copy = copy or PublishedCopy(clinic_id=branch.id, publication_id=publication.id, kind=source.kind)
        copy.target_id, copy.base, copy.version = target_id, base or {}, publication.version
        db.session.add(copy)
        db.session.flush()
    result.written.append(branch.name)


def _key(publication: GroupPublication) -> str:
    return f"hq-{publication.id}"


def publications(organization: Organization) -> list[GroupPublication]:
    query = sa.select(GroupPublication).filter_by(organization_id=organization.id)
    return list(db.session.scalars(query.order_by(GroupPublication.updated_at.desc(), GroupPublication.id.desc())))


def copies_in_branch(kind: str) -> dict[int, PublishedCopy]:
    """The current clinic's rows of ``kind`` that HQ published: target id → copy (for 「法人本部から」 marks)."""
    return {c.target_id: c for c in db.session.scalars(sa.select(PublishedCopy).filter_by(kind=kind))}


def templates_in_branch() -> set[tuple[int, str]]:
    """(set id, item key) of the current clinic's template versions that HQ published."""
    ids = [c.target_id for c in db.session.scalars(sa.select(PublishedCopy).filter_by(kind=PublishKind.TEMPLATE))]
    if not ids:
        return set()
    rows = db.session.execute(
        sa.select(ClinicLibraryOverride.set_id, ClinicLibraryOverride.item_key).where(ClinicLibraryOverride.id.in_(ids))
    )
    return {(set_id, key) for set_id, key in rows}
