"""A branch's own copy of what HQ publishes, per kind: read it as plain content, write content to it.

Content is JSON-shaped (what a manifest would say), so HQ's version, the branch's copy as HQ last
wrote it and the copy as it is now compare field by field. Every function runs in the branch's
tenant scope (the caller has entered it) and flushes without committing.
"""

from __future__ import annotations

import sqlalchemy as sa

from saas.coupons import manifest as coupon_manifest
from saas.coupons import services as coupons
from saas.coupons.models import Coupon
from saas.extensions import db
from saas.friends import services as friends
from saas.groups.models import PublishKind
from saas.library import services as library
from saas.library.models import ClinicLibraryOverride
from saas.manifests.schema import CouponSpec, ScenarioSpec
from saas.steps import manifest as scenario_manifest
from saas.steps.models import StepScenario

SCENARIO_EXCLUDED = {"key", "status"}  # the branch's own: its copy's key, and whether it runs


class CopyProblem(Exception):
    """The branch's copy cannot take this content (e.g. a coupon running on LINE); the words say why."""


def template_content(title: str, body: str) -> dict:
    return {"title": title, "body": body}


def scenario_content(spec: ScenarioSpec) -> dict:
    return scenario_manifest.normalised(spec).model_dump(mode="json", exclude=SCENARIO_EXCLUDED)


def coupon_content(spec: CouponSpec) -> dict:
    return spec.model_dump(mode="json")


def read(kind: str, target_id: int, source: str) -> dict | None:
    """The branch's copy as content now; None when the branch deleted (or closed) it."""
    if kind == PublishKind.TEMPLATE:
        row = db.session.get(ClinicLibraryOverride, target_id)
        return None if row is None or row.disabled else template_content(row.title, row.body)
    if kind == PublishKind.SCENARIO:
        row = db.session.get(StepScenario, target_id)
        return None if row is None else scenario_content(scenario_manifest.scenario_spec(row))
    row = db.session.get(Coupon, target_id)
    if row is None or row.status == "closed":
        return None
    tag_names = {tag.id: tag.name for tag in friends.clinic_tags()}
    return coupon_content(coupon_manifest.coupon_spec(row, tag_names))


def write(clinic, kind: str, source: str, content: dict, target_id: int | None, key: str) -> int:
    """Create (``target_id`` None) or update the branch's copy; its id. Raises CopyProblem."""
    if kind == PublishKind.TEMPLATE:
        _, set_id, item_key = source.split(":", 2)
        row = library.set_override(clinic, int(set_id), item_key, title=content["title"], body=content["body"])
        row.disabled = False
        db.session.flush()
        return row.id
    if kind == PublishKind.SCENARIO:
        return _write_scenario(clinic, content, target_id, key)
    return _write_coupon(clinic, content, target_id)


def _write_scenario(clinic, content: dict, target_id: int | None, key: str) -> int:
    existing = db.session.get(StepScenario, target_id) if target_id else None
    status = existing.status if existing is not None else "draft"
    spec = ScenarioSpec(**content, key=existing.key if existing is not None else key, status=status)
    try:
        scenario, _ = scenario_manifest.apply_scenario(clinic, spec)
    except scenario_manifest.SpecProblem as problem:
        raise CopyProblem(str(problem)) from problem
    db.session.flush()
    return scenario.id


def _write_coupon(clinic, content: dict, target_id: int | None) -> int:
    def fail(_path: str, reason: str):
        raise CopyProblem(reason)

    values = coupon_manifest.values_from_spec(CouponSpec(**content), "coupon", fail)
    existing = db.session.get(Coupon, target_id) if target_id else None
    if existing is not None and existing.status == "closed":
        existing = None  # closed in the branch: a new draft is made
    try:
        return coupons.save(existing or Coupon(clinic_id=clinic.id), values).id
    except coupons.CouponProblem as problem:
        raise CopyProblem(str(problem)) from problem


def scenario_key_taken(key: str) -> bool:
    return db.session.scalar(sa.select(StepScenario.id).where(StepScenario.key == key)) is not None
