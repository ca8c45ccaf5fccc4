"""The manifest sections ``friend_fields`` and ``sources`` of a clinic: export and apply.

Applied by key (fields) and name (sources): new ones are added, listed ones updated, unlisted
ones kept — deleting a field would delete every friend's value of it, so only staff do that.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa

from saas.extensions import db
from saas.fields import services as fields
from saas.fields.models import FriendField
from saas.friends import services as friends
from saas.manifests.schema import FriendFieldSpec, SourceSpec
from saas.richmenu.models import RichMenu
from saas.sources import services as sources
from saas.sources.models import InflowSource
from saas.tenancy.scoping import platform_scope, tenant_scope


def export(clinic) -> dict:
    """``friend_fields`` and ``sources`` of the clinic as manifest specs."""
    with tenant_scope(clinic.id):
        tag_names = {tag.id: tag.name for tag in friends.clinic_tags()}
        menus = {menu.id: menu.name for menu in db.session.scalars(sa.select(RichMenu))}
        return {
            "friend_fields": [
                FriendFieldSpec(key=f.key, label=f.label, kind=f.kind, choices=list(f.choices or []))
                for f in fields.all_fields()
            ],
            "sources": [
                SourceSpec(
                    name=s.name,
                    token=s.token,
                    tags=[tag_names[t] for t in s.tag_ids or [] if t in tag_names],
                    rich_menu=menus.get(s.rich_menu_id, ""),
                    poster_message=s.poster_message,
                    active=s.active,
                )
                for s in sources.all_sources()
            ],
        }


def apply(clinic, spec, sections: set[str], change: Callable[[str], None], fail: Callable[[str, str], None]) -> None:
    """Bring the clinic's fields and sources in line with the manifest (the caller commits)."""
    db.session.flush()
    with tenant_scope(clinic.id):
        if "friend_fields" in sections:
            for index, field_spec in enumerate(spec.friend_fields):
                _apply_field(field_spec, f"friend_fields[{index}]", change, fail)
        if "sources" in sections:
            for index, source_spec in enumerate(spec.sources):
                _apply_source(clinic, source_spec, f"sources[{index}]", change, fail)


def _apply_field(spec: FriendFieldSpec, path: str, change, fail) -> None:
    field = fields.get_by_key(spec.key) or FriendField()
    creating = field.id is None
    wanted = (spec.label, spec.kind, list(spec.choices))
    if not creating and (field.label, field.kind, list(field.choices or [])) == wanted:
        return
    try:
        fields.save_field(field, key=spec.key, label=spec.label, kind=spec.kind, choices=list(spec.choices))
    except fields.FieldProblem as problem:
        fail(path, str(problem))
    change(f"friend_fields: 「{spec.label}」を{'追加' if creating else '更新'}")


def _apply_source(clinic, spec: SourceSpec, path: str, change, fail) -> None:
    source = db.session.scalar(sa.select(InflowSource).where(InflowSource.name == spec.name))
    creating = source is None
    source = source or InflowSource(clinic_id=clinic.id, tag_ids=[])
    tag_ids = [friends.get_or_create_tag(name).id for name in spec.tags]
    menu_id = (
        db.session.scalar(sa.select(RichMenu.id).where(RichMenu.name == spec.rich_menu)) if spec.rich_menu else None
    )
    if spec.rich_menu and menu_id is None:
        fail(f"{path}.rich_menu", f"リッチメニュー「{spec.rich_menu}」がありません")
    before = (source.tag_ids, source.rich_menu_id, source.poster_message, source.active, source.token)
    if spec.token:
        clash = sa.select(InflowSource.id).where(InflowSource.token == spec.token, InflowSource.id != (source.id or 0))
        with platform_scope("manifest: a source token is unique across clinics"):
            if db.session.scalar(clash) is not None:
                fail(f"{path}.token", "この token は別の流入経路で使われています")
        source.token = spec.token
    source.active = spec.active
    sources.save_source(
        source, name=spec.name, tag_ids=tag_ids, rich_menu_id=menu_id, poster_message=spec.poster_message
    )
    after = (source.tag_ids, source.rich_menu_id, source.poster_message, source.active, source.token)
    if creating or before != after:
        change(f"sources: 「{spec.name}」を{'追加' if creating else '更新'}")
