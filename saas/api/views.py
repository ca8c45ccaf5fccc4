"""Portal pages of the API: API keys (made, shown once, revoked) and the API reference.

The API itself is the nested ``v1`` blueprint (saas/api/blueprint.py), its operations declared
in the resource modules imported here.
"""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_login import current_user, login_required

from saas.api import clinics, content, deliveries, friends, keys  # noqa: F401  (operations register on import)
from saas.api.blueprint import api_bp
from saas.api.models import ApiKey
from saas.api.spec import openapi_document
from saas.audit.services import record
from saas.auth.roles import ROLE_LABELS, SCOPE_LABELS, Role, Scope
from saas.extensions import db
from saas.groups.services import managed_levels
from saas.tenancy.services import roles_at, visible_clinics

bp = Blueprint("api", __name__)
bp.register_blueprint(api_bp)
MANAGING = {Role.OWNER, Role.ADMIN}


def manageable_scopes(user) -> list[dict]:
    """The agencies, organizations and clinics the user may make API keys for (owner/admin there)."""
    scopes = [
        {"scope": level.level, "id": level.id, "name": level.name}
        for level in managed_levels(user)
        if level.level in (Scope.AGENCY, Scope.ORGANIZATION)
    ]
    scopes += [
        {"scope": Scope.CLINIC, "id": clinic.id, "name": clinic.name}
        for clinic in visible_clinics(user)
        if roles_at(user, clinic) & MANAGING
    ]
    for entry in scopes:
        entry["value"] = f"{entry['scope']}:{entry['id']}"
        entry["label"] = f"{SCOPE_LABELS[entry['scope']]}：{entry['name']}"
    return scopes


def _page(new_token: str | None = None, status: int = 200):
    scopes = manageable_scopes(current_user)
    names = {(s["scope"], s["id"]): s["label"] for s in scopes}
    api_keys = keys.keys_for_scopes(list(names))
    response = render_template(
        "api/keys.html", scopes=scopes, api_keys=api_keys, scope_names=names, roles=keys.KEY_ROLES,
        role_labels=ROLE_LABELS, new_token=new_token,
    )  # fmt: skip
    return response, status, {"Cache-Control": "no-store"}  # a new token must not stay in any cache


@bp.get("/api-keys")
@login_required
def key_list():
    """The user's API keys by scope, and the form to make one."""
    if not manageable_scopes(current_user):
        abort(404)
    return _page()


@bp.post("/api-keys")
@login_required
def create_key():
    """Make a key; its token is shown on this one answer and never again."""
    allowed = {s["value"]: s for s in manageable_scopes(current_user)}
    chosen = allowed.get(request.form.get("scope", ""))
    name, role = request.form.get("name", "").strip(), request.form.get("role", "")
    if chosen is None or not name or role not in keys.KEY_ROLES:
        flash(_("名前・対象・権限を選んでください。"), "danger")
        return _page(status=422)
    key, token = keys.create_key(name, role, chosen["scope"], chosen["id"], created_by=current_user)
    record(
        "api_key.create", clinic_id=key.clinic_id, target_type="api_key", target_id=key.id,
        details={"name": key.name, "role": role, "scope": chosen["value"], "prefix": key.prefix},
    )  # fmt: skip
    db.session.commit()
    return _page(new_token=token)


@bp.post("/api-keys/<int:key_id>/revoke")
@login_required
def revoke_key(key_id: int):
    """Revoke a key at once: its next call answers 401."""
    key = db.session.get(ApiKey, key_id)
    allowed = {s["value"] for s in manageable_scopes(current_user)}
    if key is None or f"{key.scope}:{key.scope_id}" not in allowed:
        abort(404)
    keys.revoke(key)
    record(
        "api_key.revoke", clinic_id=key.clinic_id, target_type="api_key", target_id=key.id, details={"name": key.name}
    )
    db.session.commit()
    flash(_("APIキー「%(n)s」を無効にしました。", n=key.name), "success")
    return redirect(url_for(".key_list"))


@bp.get("/api-reference")
@login_required
def reference():
    """The API reference, read from the same OpenAPI document the API serves."""
    base = request.url_root.rstrip("/") + api_bp.url_prefix
    document = openapi_document(base)
    return render_template("api/reference.html", document=document, base=base)
