"""The /api/v1 blueprint: API-key authentication, the per-key rate limit, the tenant scope bound
from the key, an audit event for every authenticated call, and problem details for every error.

The scope is bound the way a staff request's is (``saas.tenancy.access``): every clinic the key
reaches, narrowed to the one clinic of a ``/clinics/<clinic_slug>/…`` URL, which must be among
them (a 404 otherwise). Cookies are ignored: only ``Authorization: Bearer`` counts, so CSRF
protection does not apply here.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import sqlalchemy as sa
from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from saas.api import keys
from saas.api.models import ApiKey
from saas.api.problems import ApiProblem, problem_response
from saas.api.spec import openapi_document
from saas.audit.services import record
from saas.delivery.ratelimit import take_from_bucket
from saas.extensions import csrf, db
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import TenantScope, enter_scope, leave_scope

api_bp = Blueprint("v1", __name__, url_prefix="/api/v1")
csrf.exempt(api_bp)
PUBLIC_ENDPOINTS = {"api.v1.openapi"}
DEFAULT_RATE = (120, 60.0)  # requests per seconds, per key


def rate_bucket_key(key: ApiKey) -> str:
    """The key's bucket; the hash tag keeps it in one Redis Cluster slot (like the channel buckets)."""
    return f"tsunagu:{{apikey:{key.id}}}:ratelimit"


def _rate() -> tuple[int, float]:
    count, seconds = current_app.config.get("API_RATE_LIMIT") or DEFAULT_RATE
    return int(count), float(seconds)


def _bearer_token() -> str | None:
    scheme, _, token = (request.headers.get("Authorization") or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _bind_scope(key: ApiKey) -> None:
    clinic_ids = keys.clinic_ids_for(key)
    slug = (request.view_args or {}).get("clinic_slug")
    g.api_clinic_id = None
    if slug is not None:
        clinic = db.session.scalars(sa.select(Clinic).where(Clinic.slug == slug, Clinic.id.in_(clinic_ids))).first()
        if clinic is None:
            raise ApiProblem(404, "No such clinic within this key's scope.")
        g.clinic, g.clinic_roles, g.api_clinic_id = clinic, {key.role}, clinic.id
        clinic_ids = frozenset({clinic.id})
    previous = g.pop("tenant_token", None)  # a portal cookie's scope, if the caller sent one
    if previous is not None:
        leave_scope(previous)
    g.tenant_token = enter_scope(TenantScope(clinic_ids))


def api_actor() -> SimpleNamespace:
    """Who did it, for audit events and deliveries: the key (API calls have no staff user)."""
    return SimpleNamespace(id=None, email=f"api-key:{g.api_key.prefix}")


@api_bp.before_request
def authenticate():
    """401 without a valid key, 429 past its rate; then the key's tenant scope."""
    g.api_key = None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    key = keys.find_active(_bearer_token())
    if key is None:
        return problem_response(
            401, "Send a valid API key: Authorization: Bearer <key>.", headers={"WWW-Authenticate": "Bearer"}
        )
    g.api_key = key
    wait = take_from_bucket(rate_bucket_key(key), *_rate())
    if wait > 0:
        raise ApiProblem(429, "This key's rate limit is used up.", headers={"Retry-After": str(math.ceil(wait))})
    _bind_scope(key)
    return None


@api_bp.after_request
def audit_call(response):
    """Every call of a key is in the audit log (with its clinic, when the URL names one)."""
    key = g.get("api_key")
    if key is None:
        return response
    db.session.rollback()  # views commit what they change; nothing else may ride on this commit
    key = db.session.get(ApiKey, key.id)
    keys.touch(key)
    operation = g.get("api_operation")
    record(
        "api.call",
        clinic_id=g.get("api_clinic_id"),
        target_type="api_key",
        target_id=key.id,
        details={
            "method": request.method,
            "path": request.path[:300],
            "operation": getattr(operation, "endpoint", ""),
            "status": response.status_code,
            "key": key.name,
        },
        actor=api_actor(),
    )
    db.session.commit()
    return response


@api_bp.errorhandler(ApiProblem)
def _problem(error: ApiProblem):
    db.session.rollback()
    return problem_response(error.status, error.detail, errors=error.errors, headers=error.headers)


@api_bp.errorhandler(sa.exc.DataError)
def _unstorable(error: sa.exc.DataError):
    """Input the database cannot hold (Postgres: an id beyond its integer type, a NUL in text)."""
    db.session.rollback()
    if any(isinstance(v, int) and not -(2**31) <= v < 2**31 for v in (request.view_args or {}).values()):
        return problem_response(404, "No such resource.")
    return problem_response(422, "A value is out of range or holds a character that cannot be stored (such as NUL).")


@api_bp.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    db.session.rollback()
    return problem_response(error.code or 500, error.description or error.name)


@api_bp.get("/openapi.json")
def openapi():
    """The OpenAPI 3.1 document (public, like any API reference)."""
    return jsonify(openapi_document(request.url_root.rstrip("/") + api_bp.url_prefix))
