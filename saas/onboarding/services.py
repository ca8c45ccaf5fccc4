"""The onboarding wizard's work: creating a clinic under an organization, starting manifests
(a starter from the library or uploaded YAML, always shown as a dry-run diff first), the clinic's
profile (the same fields as a manifest's ``profile``) and the go-live checklist."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
import yaml
from pydantic import ValidationError

from saas.auth.roles import Scope
from saas.autoreply import services as autoreply
from saas.autoreply.models import AutoReplyRule
from saas.extensions import db
from saas.groups.services import managed_levels
from saas.library.models import LibrarySubscription
from saas.manifests.apply import ManifestError, Outcome, apply_clinic_section, field_path, load_text
from saas.manifests.reasons import field_reason, yaml_reason
from saas.manifests.schema import SLUG, ClinicSpec
from saas.schedule.models import WeeklyBlock
from saas.tenancy.models import Clinic, Organization

STARTERS = Path(__file__).parent / "starters"
PROFILE_FIELDS = ("specialty", "phone", "address", "access", "parking", "website_url")


def organizations_for(user) -> list[Organization]:
    """Organizations the user may add clinics to: those they (or their agency) administer."""
    ids = [level.id for level in managed_levels(user) if level.level == Scope.ORGANIZATION]
    if any(level.level == "platform" for level in managed_levels(user)):
        return list(db.session.scalars(sa.select(Organization).order_by(Organization.name)))
    return list(db.session.scalars(sa.select(Organization).where(Organization.id.in_(ids)).order_by(Organization.name)))


def create_clinic(organization: Organization, name: str, slug: str) -> Clinic | str:
    """A new clinic (flushed), or the reason it cannot be made, in words."""
    slug = slug.strip().lower()
    if not name.strip():
        return "院名を入力してください"
    if not re.fullmatch(SLUG, slug):
        return "URL名は半角英小文字・数字・ハイフンで入力してください（例: sakura-ebisu）"
    if db.session.scalar(sa.select(Clinic.id).where(Clinic.slug == slug)):
        return "このURL名はすでに使われています"
    clinic = Clinic(name=name.strip()[:200], slug=slug, organization_id=organization.id)
    db.session.add(clinic)
    db.session.flush()
    return clinic


@dataclass(frozen=True)
class Starter:
    key: str
    name: str
    section: dict


def starters() -> list[Starter]:
    """The starting manifests of the library (saas/onboarding/starters/*.yaml)."""
    found = []
    for path in sorted(STARTERS.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        found.append(Starter(path.stem, data["name"], data["clinic"]))
    return found


def section_from(clinic: Clinic, *, starter: str | None, text: str | None, name: str = "upload") -> ClinicSpec:
    """The clinic section to apply: a starter, or uploaded YAML named ``name`` (a whole manifest or one clinic)."""
    if starter:
        chosen = next((s for s in starters() if s.key == starter), None)
        if chosen is None:
            raise ManifestError("starter", "(starter)", "そのテンプレートはありません")
        return _validated({"slug": clinic.slug, "name": clinic.name, **chosen.section}, "starter")
    try:
        data = yaml.safe_load(text or "")
    except yaml.YAMLError as error:
        raise ManifestError(name, "(yaml)", yaml_reason(error)) from error
    if isinstance(data, dict) and "clinics" in data:
        manifest = load_text(text, name)
        mine = [c for c in manifest.clinics if c.slug == clinic.slug]
        if not mine:
            raise ManifestError(name, "clinics", f"このマニフェストに {clinic.slug} がありません")
        return mine[0]
    if not isinstance(data, dict):
        raise ManifestError(name, "(root)", "YAMLの形式が正しくありません")
    return _validated({"slug": clinic.slug, "name": clinic.name, **data}, name)


def _validated(data: dict, name: str) -> ClinicSpec:
    try:
        return ClinicSpec.model_validate(data)
    except ValidationError as error:
        problems = [(field_path(e["loc"]), field_reason(e)) for e in error.errors()]
        raise ManifestError(name, *problems[0], others=problems[1:]) from error


def try_section(clinic: Clinic, spec: ClinicSpec, *, dry_run: bool) -> Outcome:
    return apply_clinic_section(clinic, spec, dry_run=dry_run, name="wizard")


@dataclass(frozen=True)
class Step:
    key: str
    done: bool
    endpoint: str


def checklist(clinic: Clinic) -> list[Step]:
    """What a clinic needs before it goes live, each with the page that does it (in its tenant scope)."""
    from saas.booking.models import BookingMode, BookingSettings
    from saas.quota.models import ClinicPlan
    from saas.richmenu.models import RichMenu

    settings = autoreply.get_settings(clinic.id)
    count = lambda statement: db.session.scalar(statement) or 0  # noqa: E731
    faq = count(sa.select(sa.func.count(AutoReplyRule.id))) + count(sa.select(sa.func.count(LibrarySubscription.id)))
    booking = db.session.scalar(sa.select(BookingSettings.mode))
    steps = [
        Step("line", clinic.line_connected, "line.settings"),
        Step("profile", bool(clinic.phone and clinic.address), "onboarding.profile"),
        Step("schedule", bool(count(sa.select(sa.func.count(WeeklyBlock.id)))), "schedule.weekly"),
        Step("greeting", bool(settings.greeting_messages), "autoreply.settings"),
        Step("richmenu", bool(count(sa.select(sa.func.count(RichMenu.id)).where(RichMenu.deployed_at.is_not(None)))), "richmenu.index"),
        Step("faq", bool(faq), "autoreply.rules"),
        Step("booking", booking not in (None, BookingMode.OFF), "booking.staff.settings"),
        Step("plan", bool(count(sa.select(sa.func.count(ClinicPlan.id)))), "onboarding.plan"),
        Step("staff", _has_clinic_staff(clinic), "members.index"),
    ]  # fmt: skip
    billing = _billing_step(clinic)
    return [*steps, billing] if billing else steps


def _has_clinic_staff(clinic: Clinic) -> bool:
    from saas.auth.models import Membership
    from saas.members.models import Invitation

    members = db.session.scalar(sa.select(sa.func.count(Membership.id)).where(Membership.clinic_id == clinic.id)) or 0
    invited = db.session.scalar(sa.select(sa.func.count(Invitation.id)).where(Invitation.clinic_id == clinic.id)) or 0
    return bool(members or invited)


def _billing_step(clinic: Clinic) -> Step | None:
    """Billing is on the checklist where the billing capability exists (a subscription pays for the clinic)."""
    try:
        from saas.billing.accounts import account_for_clinic
    except ImportError:
        return None
    return Step("billing", account_for_clinic(clinic) is not None, "billing.for_clinic")
