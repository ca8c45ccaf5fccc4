"""A clinic's current state as a manifest (what `flask tenants export` writes)."""

from __future__ import annotations

import sqlalchemy as sa
import yaml

from saas.adcheck import manifest as adcheck_manifest
from saas.autoreply import services as autoreply
from saas.autoreply.models import AutoReplyRule
from saas.coupons import manifest as coupons_manifest
from saas.extensions import db
from saas.fields import manifest as friends_manifest
from saas.forms import manifest as forms_manifest
from saas.library.models import ClinicLibraryOverride, LibrarySet, LibrarySubscription
from saas.manifests.models import ChannelSecretSource
from saas.manifests.schema import (
    AgencySpec,
    AutoreplySpec,
    ChannelSpec,
    ClinicSpec,
    ClosureSpec,
    HandoffSpec,
    LibrarySpec,
    Manifest,
    OrganizationLinksSpec,
    OrganizationSpec,
    OverrideSpec,
    ProfileSpec,
    RuleSpec,
    ScheduleSpec,
    WeeklySpec,
)
from saas.richmenu.services import get_organization_links
from saas.schedule import services as schedule
from saas.schedule.models import WEEKDAYS, Closure
from saas.steps import manifest as steps_manifest

PROFILE_FIELDS = tuple(ProfileSpec.model_fields)


def messages_to_spec(messages: list[dict]) -> list:
    """Text messages as plain strings (readable YAML), anything else as the message object."""
    return [m["text"] if m.get("type") == "text" and set(m) == {"type", "text"} else m for m in messages or []]


def messages_from_spec(messages: list) -> list[dict]:
    return [{"type": "text", "text": m} if isinstance(m, str) else dict(m) for m in messages]


def profile_spec(clinic) -> ProfileSpec:
    return ProfileSpec(**{name: getattr(clinic, name) or "" for name in PROFILE_FIELDS})


def channel_spec(clinic) -> ChannelSpec | None:
    source = db.session.scalars(
        sa.select(ChannelSecretSource).where(ChannelSecretSource.clinic_id == clinic.id)
    ).first()
    if source is None and not clinic.line_channel_id:
        return None
    return ChannelSpec(
        channel_id=clinic.line_channel_id or "",
        channel_secret_env=(source.channel_secret_env or None) if source else None,
        access_token_env=(source.access_token_env or None) if source else None,
    )


def schedule_spec(clinic) -> ScheduleSpec:
    week = schedule.weekly_blocks(clinic.id)
    weekly = WeeklySpec(**{WEEKDAYS[day]: [vars(b) for b in blocks] for day, blocks in week.items()})
    closures = db.session.scalars(
        sa.select(Closure).where(Closure.clinic_id == clinic.id).order_by(Closure.starts_on, Closure.id)
    )
    return ScheduleSpec(
        closed_on_public_holidays=schedule.get_settings(clinic.id).closed_on_public_holidays,
        weekly=weekly,
        closures=[
            ClosureSpec(kind=c.kind, starts_on=c.starts_on, ends_on=c.ends_on, blocks=c.block_labels, reason=c.reason,
                        substitute_doctor=c.substitute_doctor, notify_friends=c.notify_friends)
            for c in closures
        ],
    )  # fmt: skip


def rule_spec(rule: AutoReplyRule) -> RuleSpec:
    return RuleSpec(
        name=rule.name, match=rule.match_type, keywords=list(rule.keywords), required_literal=rule.required_literal,
        priority=rule.priority, enabled=rule.enabled, active_from=rule.active_from, active_until=rule.active_until,
        reply=messages_to_spec(rule.messages), computed=rule.computed or None,
    )  # fmt: skip


def autoreply_spec(clinic) -> AutoreplySpec:
    settings = autoreply.get_settings(clinic.id)
    rules = db.session.scalars(
        sa.select(AutoReplyRule)
        .where(AutoReplyRule.clinic_id == clinic.id)
        .order_by(AutoReplyRule.priority.desc(), AutoReplyRule.id)
    )
    return AutoreplySpec(
        greeting=messages_to_spec(settings.greeting_messages),
        greeting_shows_closures=settings.greeting_shows_closures,
        fallback=messages_to_spec(settings.fallback_messages),
        handoff=HandoffSpec(phrases=list(settings.handoff_phrases or []), reply=settings.handoff_reply,
                            resume_after_hours=settings.handoff_resume_hours),
        emergency_keywords=settings.emergency_keywords,
        rules=[rule_spec(rule) for rule in rules],
    )  # fmt: skip


def library_spec(clinic) -> LibrarySpec:
    subscriptions = db.session.scalars(
        sa.select(LibrarySet.key)
        .join(LibrarySubscription, LibrarySubscription.set_id == LibrarySet.id)
        .where(LibrarySubscription.clinic_id == clinic.id)
        .order_by(LibrarySet.key)
    )
    overrides = db.session.execute(
        sa.select(ClinicLibraryOverride, LibrarySet.key)
        .join(LibrarySet, LibrarySet.id == ClinicLibraryOverride.set_id)
        .where(ClinicLibraryOverride.clinic_id == clinic.id)
        .order_by(LibrarySet.key, ClinicLibraryOverride.item_key)
    )
    return LibrarySpec(
        subscriptions=list(subscriptions),
        overrides=[
            OverrideSpec(set=key, item=o.item_key, title=o.title, keywords=list(o.keywords or []), body=o.body,
                         disabled=o.disabled)
            for o, key in overrides
        ],
    )  # fmt: skip


def clinic_spec(clinic) -> ClinicSpec:
    """The whole clinic as the manifest section that would recreate it."""
    return ClinicSpec(
        slug=clinic.slug,
        name=clinic.name,
        profile=profile_spec(clinic),
        channel=channel_spec(clinic),
        schedule=schedule_spec(clinic),
        autoreply=autoreply_spec(clinic),
        library=library_spec(clinic),
        **friends_manifest.export(clinic),
        **steps_manifest.export(clinic),
        **coupons_manifest.export(clinic),
        **forms_manifest.export(clinic),
    )


def organization_links_spec(organization) -> OrganizationLinksSpec:
    """The organization's group-wide rich menu links."""
    links = get_organization_links(organization.id)
    return OrganizationLinksSpec(
        recruitment_url=links.recruitment_url or "", online_consultation_url=links.online_consultation_url or ""
    )


def manifest_for(clinic) -> Manifest:
    organization = clinic.organization
    agency = organization.agency
    return Manifest(
        agency=AgencySpec(slug=agency.slug, name=agency.name) if agency else None,
        organization=OrganizationSpec(
            slug=organization.slug,
            name=organization.name,
            kind=organization.kind,
            links=organization_links_spec(organization),
            adcheck=adcheck_manifest.export(organization),
        ),
        clinics=[clinic_spec(clinic)],
    )


def to_yaml(manifest: Manifest) -> str:
    """Readable YAML: defaults left out, Japanese as is, field order as in the schema."""
    data = manifest.model_dump(mode="json", exclude_defaults=True)
    data = {"version": manifest.version, **data}
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=120)
