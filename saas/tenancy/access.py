"""The current clinic of a request and the permission check for views.

The clinic is taken once per request from the URL (``/c/<clinic>/...``); a clinic the user
may not see is a 404. The tenant scope for the ORM is set here and nowhere else for
requests: the clinic in the URL, or every clinic the user may see on pages without one.
"""

from __future__ import annotations

import functools

from flask import Flask, abort, current_app, g, redirect, request, url_for
from flask_login import current_user

from saas.auth.roles import allows
from saas.tenancy import services
from saas.tenancy.scoping import TenantScope, enter_scope, leave_scope


def _take_clinic_from_url(endpoint, values) -> None:
    if values and "clinic" in values:
        g.clinic_slug = values.pop("clinic")


def _add_clinic_to_urls(endpoint: str, values: dict) -> None:
    clinic = g.get("clinic")
    if clinic is not None and "clinic" not in values and _endpoint_takes_clinic(endpoint):
        values["clinic"] = clinic.slug


def _endpoint_takes_clinic(endpoint: str) -> bool:
    return current_app.url_map.is_endpoint_expecting(endpoint, "clinic")


def _bind_tenant():
    g.clinic = None
    g.clinic_roles = set()
    slug = g.pop("clinic_slug", None)
    if not current_user.is_authenticated:
        if slug is not None:
            return redirect(url_for("auth.login", next=request.full_path))
        return None
    if slug is None:
        g.tenant_token = enter_scope(TenantScope(services.visible_clinic_ids(current_user)))
        return None
    clinic = services.get_visible_clinic(current_user, slug)
    if clinic is None:
        abort(404)
    g.clinic = clinic
    g.clinic_roles = services.roles_at(current_user, clinic)
    g.tenant_token = enter_scope(TenantScope(frozenset({clinic.id})))
    return None


def _release_tenant(exc=None) -> None:
    token = g.pop("tenant_token", None)
    if token is not None:
        leave_scope(token)


def current_clinic():
    """The clinic of this request (views under /c/<clinic>/ only)."""
    clinic = g.get("clinic")
    if clinic is None:
        abort(404)
    return clinic


def can(permission: str) -> bool:
    """Whether the signed-in user holds the permission at the current clinic."""
    return allows(g.get("clinic_roles", set()), permission)


def sees_delivery_titles() -> bool:
    """A send's title is often its first words: shown to senders and chat readers, not to analysts
    or viewers (they see the send as #id, its kind and date)."""
    return can("messages.send") or can("chat.read")


def require(permission: str):
    """View decorator: 403 unless the user's roles at the current clinic grant the permission."""

    def decorator(view):
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            current_clinic()
            if not can(permission):
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def init_app(app: Flask) -> None:
    app.url_value_preprocessor(_take_clinic_from_url)
    app.url_defaults(_add_clinic_to_urls)
    app.before_request(_bind_tenant)
    app.teardown_request(_release_tenant)
    app.context_processor(lambda: {"clinic": g.get("clinic"), "can": can, "sees_delivery_titles": sees_delivery_titles})
