"""Applying a manifest: compare each section with the database and change only what differs.

A field the file does not mention is left as it is (an agency re-applying a partial YAML must
not disconnect a clinic). Sections (profile, channel, schedule, autoreply, library, links) are
merged field by field; a list, and the weekly timetable, is one value replaced as a whole.
A clinic or organization the file creates gets every field, unmentioned ones at their defaults.

Each file is applied in one transaction. The caller commits (or, for a dry run, rolls
back); an error anywhere rolls the whole file back and names the field path.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
import yaml
from pydantic import BaseModel, ValidationError

from saas.adcheck import manifest as adcheck_manifest
from saas.autoreply import services as autoreply
from saas.autoreply.models import AutoReplyRule
from saas.coupons import manifest as coupons_manifest
from saas.extensions import db
from saas.fields import manifest as friends_manifest
from saas.forms import manifest as forms_manifest
from saas.library import services as library
from saas.library.models import ClinicLibraryOverride
from saas.manifests import export
from saas.manifests.models import ChannelSecretSource
from saas.manifests.reasons import field_reason, yaml_reason
from saas.manifests.schema import ClinicSpec, Manifest, OrganizationLinksSpec
from saas.richmenu.services import set_organization_links
from saas.schedule import services as schedule
from saas.schedule.models import WEEKDAYS, Closure, WeeklyBlock
from saas.steps import manifest as steps_manifest
from saas.tenancy.models import Agency, Clinic, Organization

# Manifest field → column of the clinic's auto-reply settings.
AUTOREPLY_COLUMNS = {
    "greeting": "greeting_messages",
    "greeting_shows_closures": "greeting_shows_closures",
    "fallback": "fallback_messages",
    "emergency_keywords": "emergency_keywords",
}
HANDOFF_COLUMNS = {"phrases": "handoff_phrases", "reply": "handoff_reply", "resume_after_hours": "handoff_resume_hours"}


class ManifestError(Exception):
    """A manifest that cannot be applied: which file, which field, why."""

    def __init__(self, file: str, path: str, reason: str, others: list[tuple[str, str]] | None = None):
        super().__init__(f"{file}: {path}: {reason}")
        self.file, self.path, self.reason = file, path, reason
        self.others = others or []  # further (path, reason) pairs of the same file

    def problems(self) -> list[tuple[str, str]]:
        """Every (field path, reason) of the file, the first one first."""
        return [(self.path, self.reason), *self.others]

    def lines(self) -> list[str]:
        return [f"{self.file}: {path}: {reason}" for path, reason in self.problems()]


@dataclass
class Outcome:
    file: str
    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def field_path(loc: tuple) -> str:
    """('clinics', 0, 'schedule', 'weekly', 'mon', 1, 'start') → clinics[0].schedule.weekly.mon[1].start"""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part.isidentifier():  # pydantic also puts union member names such as 'dict[str,any]' in loc
            text += f".{part}" if text else part
    return text or "(root)"


def load(path: Path) -> Manifest:
    """Parse and validate one file; errors name the file and the first bad field."""
    return load_text(path.read_text(encoding="utf-8"), str(path))


def load_text(text: str, name: str) -> Manifest:
    """Parse and validate manifest YAML (a file's, or an upload's named ``name``)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ManifestError(name, "(yaml)", yaml_reason(exc)) from exc
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        problems = [(field_path(e["loc"]), field_reason(e)) for e in exc.errors()]
        raise ManifestError(name, *problems[0], others=problems[1:]) from exc


def mentioned(spec: BaseModel | None, *, creating: bool = False) -> set[str]:
    """The fields of a manifest section to apply: those the file mentions, or all for a new row."""
    if spec is None:
        return set()
    return set(type(spec).model_fields) if creating else set(spec.model_fields_set)


class Applier:
    """Brings the database in line with one manifest, recording each change."""

    def __init__(self, manifest: Manifest, outcome: Outcome):
        self.manifest, self.outcome = manifest, outcome

    def change(self, text: str) -> None:
        self.outcome.changes.append(text)

    def run(self) -> None:
        agency = self.apply_agency()
        organization = self.apply_organization(agency)
        for index, spec in enumerate(self.manifest.clinics):
            ClinicApplier(self, spec, f"clinics[{index}]").run(organization)

    def _upsert(self, model, slug: str, label: str, values: dict, defaults: dict | None = None):
        """Find the row by slug and set ``values``; a new row also gets ``defaults``."""
        row = db.session.scalars(sa.select(model).where(model.slug == slug)).first()
        if row is None:
            row = model(slug=slug, **{**(defaults or {}), **values})
            db.session.add(row)
            db.session.flush()
            self.change(f"{label} {slug} を作成")
            return row
        for name, value in values.items():
            if getattr(row, name) != value:
                self.change(f"{label} {slug}.{name}: {getattr(row, name)!r} → {value!r}")
                setattr(row, name, value)
        return row

    def apply_agency(self) -> dict:
        """The organization's ``agency_id`` to set: none when the file does not mention an agency."""
        if "agency" not in self.manifest.model_fields_set:
            return {}
        spec = self.manifest.agency
        agency = self._upsert(Agency, spec.slug, "代理店", {"name": spec.name}) if spec else None
        return {"agency_id": agency.id if agency else None}

    def apply_organization(self, agency: dict) -> Organization:
        spec = self.manifest.organization
        values = {"name": spec.name, **agency}
        if "kind" in spec.model_fields_set:
            values["kind"] = spec.kind
        exists = db.session.scalars(sa.select(Organization.id).where(Organization.slug == spec.slug)).first()
        organization = self._upsert(Organization, spec.slug, "法人", values, {"kind": spec.kind})
        if "links" in spec.model_fields_set or exists is None:
            self.apply_organization_links(organization, spec.links, creating=exists is None)
        if "adcheck" in spec.model_fields_set:
            adcheck_manifest.apply(organization, spec.adcheck, self.change)
        return organization

    def apply_organization_links(self, organization: Organization, spec: OrganizationLinksSpec, creating: bool) -> None:
        current = export.organization_links_spec(organization).model_dump()
        wanted = {name: getattr(spec, name) for name in mentioned(spec, creating=creating)}
        if all(current[name] == value for name, value in wanted.items()):
            return
        set_organization_links(organization.id, **wanted)
        self.change(f"法人 {organization.slug}.links: {wanted!r}")


class ClinicApplier:
    """One clinic section: profile, channel, schedule, auto-reply, library."""

    def __init__(self, parent: Applier, spec: ClinicSpec, path: str):
        self.parent, self.spec, self.path = parent, spec, path
        self.creating = False

    def change(self, text: str) -> None:
        self.parent.change(f"{self.spec.slug}: {text}")

    def fail(self, subpath: str, reason: str):
        raise ManifestError(self.parent.outcome.file, f"{self.path}.{subpath}", reason)

    def given(self, spec: BaseModel | None) -> set[str]:
        """The fields of ``spec`` to apply to this clinic."""
        return mentioned(spec, creating=self.creating)

    def run(self, organization: Organization) -> None:
        self.creating = not db.session.scalars(sa.select(Clinic.id).where(Clinic.slug == self.spec.slug)).first()
        profile = self.spec.profile if "profile" in self.given(self.spec) else None
        values = {"name": self.spec.name, "organization_id": organization.id}
        values.update({name: getattr(profile, name) for name in self.given(profile)})
        self.clinic = self.parent._upsert(Clinic, self.spec.slug, "クリニック", values)
        self.current = export.clinic_spec(self.clinic)
        sections = self.given(self.spec)
        if "channel" in sections and self.spec.channel is not None:
            self.apply_channel(self.spec.channel)
        if "schedule" in sections:
            self.apply_schedule()
        if "autoreply" in sections:
            self.apply_autoreply()
        if "library" in sections:
            self.apply_library()
        if sections & {"friend_fields", "sources"}:
            friends_manifest.apply(self.clinic, self.spec, sections, self.change, self.fail)
        if "forms" in sections:  # after the fields: questions name them
            forms_manifest.apply(self.clinic, self.spec, self.change, self.fail)
        if "step_scenarios" in sections:
            steps_manifest.apply(self.clinic, self.spec, sections, self.change, self.fail)
        if sections & {"coupons", "shop_card"}:
            coupons_manifest.apply(self.clinic, self.spec, sections, self.change, self.fail)

    def apply_channel(self, spec) -> None:
        fields = self.given(spec)
        if "channel_id" in fields and (self.clinic.line_channel_id or "") != spec.channel_id:
            self.change(f"channel_id → {spec.channel_id!r}")
            self.clinic.line_channel_id = spec.channel_id or None
        source = db.session.scalars(
            sa.select(ChannelSecretSource).where(ChannelSecretSource.clinic_id == self.clinic.id)
        ).first() or ChannelSecretSource(clinic_id=self.clinic.id, channel_secret_env="", access_token_env="")
        for name, column in (("channel_secret_env", "line_channel_secret"), ("access_token_env", "line_access_token")):
            if name not in fields:
                continue
            env_name = getattr(spec, name) or ""
            if (getattr(source, name) or "") != env_name:
                self.change(f"channel.{name} → {env_name or '(なし)'}")
                setattr(source, name, env_name)
            self._secret_from_env(env_name, column)
        db.session.add(source)

    def _secret_from_env(self, env_name: str, column: str) -> None:
        if not env_name:
            return
        value = os.environ.get(env_name)
        if value is None:
            self.parent.outcome.warnings.append(
                f"{self.spec.slug}: 環境変数 {env_name} が未設定のため {column} は変更しません"
            )
        elif getattr(self.clinic, column) != value:
            self.change(f"{column} を環境変数 {env_name} から設定")
            setattr(self.clinic, column, value)

    def apply_schedule(self) -> None:
        spec, current = self.spec.schedule, self.current.schedule
        fields = self.given(spec)
        holidays = spec.closed_on_public_holidays
        if "closed_on_public_holidays" in fields and holidays != current.closed_on_public_holidays:
            schedule.get_settings(self.clinic.id).closed_on_public_holidays = holidays
            self.change(f"schedule.closed_on_public_holidays → {holidays}")
        if "weekly" in fields and spec.weekly != current.weekly:
            self._replace_weekly()
        if "closures" in fields and spec.closures != current.closures:
            self._sync_closures()

    def _replace_weekly(self) -> None:
        db.session.execute(sa.delete(WeeklyBlock).where(WeeklyBlock.clinic_id == self.clinic.id))
        for weekday, name in enumerate(WEEKDAYS):
            for block in getattr(self.spec.schedule.weekly, name):
                db.session.add(WeeklyBlock(clinic_id=self.clinic.id, weekday=weekday, **block.model_dump()))
        self.change("schedule.weekly を更新")

    def _sync_closures(self) -> None:
        rows = db.session.scalars(sa.select(Closure).where(Closure.clinic_id == self.clinic.id)).all()
        by_key = {(r.kind, r.starts_on, r.ends_on, tuple(r.block_labels)): r for r in rows}
        wanted = {c.key(): c for c in self.spec.schedule.closures}
        for key, row in by_key.items():
            if key not in wanted:
                db.session.delete(row)
                self.change(f"schedule.closures: {key[1]} の{'代診' if key[0] == 'substitute' else '休診'}を削除")
        for key, spec in wanted.items():
            row = by_key.get(key) or Closure(clinic_id=self.clinic.id)
            values = {
                "kind": spec.kind, "starts_on": spec.starts_on, "ends_on": spec.ends_on or spec.starts_on,
                "blocks": ",".join(spec.blocks), "reason": spec.reason, "substitute_doctor": spec.substitute_doctor,
                "notify_friends": spec.notify_friends,
            }  # fmt: skip
            if row.id is None or any(getattr(row, k) != v for k, v in values.items()):
                self.change(f"schedule.closures: {spec.starts_on} を{'追加' if row.id is None else '更新'}")
                for name, value in values.items():
                    setattr(row, name, value)
                db.session.add(row)

    def apply_autoreply(self) -> None:
        spec, current = self.spec.autoreply, self.current.autoreply
        fields, settings = self.given(spec), autoreply.get_settings(self.clinic.id)
        wanted = {column: getattr(spec, name) for name, column in AUTOREPLY_COLUMNS.items() if name in fields}
        for column in ("greeting_messages", "fallback_messages"):
            if column in wanted:
                wanted[column] = export.messages_from_spec(wanted[column])
        if "handoff" in fields:
            handoff = self.given(spec.handoff)
            wanted |= {
                column: getattr(spec.handoff, name) for name, column in HANDOFF_COLUMNS.items() if name in handoff
            }
        for column, value in wanted.items():
            if getattr(settings, column) != value:
                setattr(settings, column, value)
                self.change(f"autoreply.{column} を更新")
        if "rules" in fields and spec.rules != current.rules:
            self._sync_rules()

    def _sync_rules(self) -> None:
        rows = {
            r.name: r
            for r in db.session.scalars(sa.select(AutoReplyRule).where(AutoReplyRule.clinic_id == self.clinic.id))
        }
        wanted = {rule.name: rule for rule in self.spec.autoreply.rules}
        for name in rows.keys() - wanted.keys():
            db.session.delete(rows[name])
            self.change(f"autoreply.rules: 「{name}」を削除")
        for name, spec in wanted.items():
            row = rows.get(name) or AutoReplyRule(clinic_id=self.clinic.id, name=name)
            values = {
                "match_type": spec.match, "keywords": list(spec.keywords), "required_literal": spec.required_literal,
                "priority": spec.priority, "enabled": spec.enabled, "active_from": spec.active_from,
                "active_until": spec.active_until, "messages": export.messages_from_spec(spec.reply),
                "computed": spec.computed or "",
            }  # fmt: skip
            if row.id is None or any(getattr(row, k) != v for k, v in values.items()):
                self.change(f"autoreply.rules: 「{name}」を{'追加' if row.id is None else '更新'}")
                for key, value in values.items():
                    setattr(row, key, value)
                db.session.add(row)

    def apply_library(self) -> None:
        spec, current = self.spec.library, self.current.library
        fields = self.given(spec)
        if all(getattr(spec, name) == getattr(current, name) for name in fields):
            return
        library.ensure_standard_library()
        sets = {s.key: s for s in library.visible_sets(self.clinic)}
        if "subscriptions" in fields:
            self._sync_subscriptions(sets)
        if "overrides" in fields and spec.overrides != current.overrides:
            self._sync_overrides(sets)

    def _sync_subscriptions(self, sets: dict) -> None:
        wanted, current = self.spec.library.subscriptions, self.current.library.subscriptions
        for index, key in enumerate(wanted):
            if key not in sets:
                self.fail(f"library.subscriptions[{index}]", f"このクリニックが使えるライブラリに {key!r} はありません")
        for key in set(wanted) ^ set(current):
            library.set_subscription(self.clinic, sets[key].id, key in wanted)
            self.change(f"library.subscriptions: {key} を{'追加' if key in wanted else '解除'}")

    def _sync_overrides(self, sets: dict) -> None:
        db.session.execute(sa.delete(ClinicLibraryOverride).where(ClinicLibraryOverride.clinic_id == self.clinic.id))
        for index, override in enumerate(self.spec.library.overrides):
            if override.set not in sets:
                self.fail(f"library.overrides[{index}].set", f"ライブラリ {override.set!r} はありません")
            db.session.add(
                ClinicLibraryOverride(clinic_id=self.clinic.id, set_id=sets[override.set].id, item_key=override.item,
                                      title=override.title, keywords=list(override.keywords), body=override.body,
                                      disabled=override.disabled)
            )  # fmt: skip
        from saas.autoreply.cache import bump_clinic

        bump_clinic(self.clinic.id, on_commit=True)
        self.change("library.overrides を更新")


def apply_file(path: Path, *, dry_run: bool = False) -> Outcome:
    """Apply one manifest file in one transaction (rolled back on error or dry run)."""
    outcome = Outcome(str(path))
    manifest = load(path)
    try:
        Applier(manifest, outcome).run()
        db.session.flush()
    except ManifestError:
        db.session.rollback()
        raise
    except Exception as exc:
        db.session.rollback()
        raise ManifestError(str(path), "(適用中)", f"{type(exc).__name__}: {exc}") from exc
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    return outcome


def apply_clinic_section(clinic: Clinic, spec: ClinicSpec, *, dry_run: bool, name: str) -> Outcome:
    """Apply one clinic's section to that existing clinic (API, onboarding wizard), in the clinic's
    tenant scope and one transaction (rolled back on error or dry run).

    The section must name this clinic, and may not read secrets from the server's environment
    (``channel.*_env`` is for manifests an operator applies from the command line).
    """
    if spec.slug != clinic.slug:
        raise ManifestError(name, "slug", f"このクリニックのスラッグは {clinic.slug!r} です")
    if spec.channel is not None and (spec.channel.channel_secret_env or spec.channel.access_token_env):
        raise ManifestError(name, "channel", "環境変数からの秘密情報の読み込みはコマンドラインでのみ使えます")
    outcome = Outcome(name)
    manifest = Manifest(
        organization={"slug": clinic.organization.slug, "name": clinic.organization.name}, clinics=[spec]
    )
    try:
        ClinicApplier(Applier(manifest, outcome), spec, "clinic").run(clinic.organization)
        db.session.flush()
    except ManifestError:
        db.session.rollback()
        raise
    except Exception as exc:
        db.session.rollback()
        raise ManifestError(name, "(適用中)", f"{type(exc).__name__}: {exc}") from exc
    if dry_run:
        db.session.rollback()
    else:
        db.session.commit()
    return outcome


def manifest_files(target: Path) -> list[Path]:
    """The file itself, or every *.yaml / *.yml in a directory, in name order."""
    if target.is_dir():
        return sorted([*target.glob("*.yaml"), *target.glob("*.yml")])
    return [target]
