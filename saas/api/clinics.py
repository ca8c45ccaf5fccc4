"""API: the clinics a key reaches, and their audit events."""

from __future__ import annotations

import sqlalchemy as sa
from flask import g

from saas.api import paging
from saas.api.blueprint import api_bp
from saas.api.schemas import AuditOut, AuditPage, AuditQuery, ClinicOut, ClinicPage, PageQuery
from saas.api.spec import operation
from saas.audit.models import AuditEvent
from saas.audit.services import events_for_clinics
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import current_scope

PROFILE_FIELDS = ("specialty", "phone", "address", "access", "parking", "website_url", "logo_url")


def clinic_out(clinic: Clinic) -> ClinicOut:
    organization = clinic.organization
    return ClinicOut(
        slug=clinic.slug,
        name=clinic.name,
        organization=organization.slug,
        agency=organization.agency.slug if organization.agency else None,
        line_connected=clinic.line_connected,
        **{name: getattr(clinic, name) or "" for name in PROFILE_FIELDS},
    )


@operation(
    api_bp,
    "GET",
    "/clinics",
    summary="List clinics",
    tag="clinics",
    permission="clinic.view",
    query=PageQuery,
    response=ClinicPage,
)
def list_clinics(query: PageQuery):
    """Every clinic the key reaches (an agency key: all its clients' clinics)."""
    statement = sa.select(Clinic).where(Clinic.id.in_(current_scope().clinic_ids))
    rows, cursor = paging.page(statement, Clinic.id, query)
    return ClinicPage(data=[clinic_out(c) for c in rows], next_cursor=cursor)


@operation(
    api_bp,
    "GET",
    "/clinics/<clinic_slug>",
    summary="Get a clinic",
    tag="clinics",
    permission="clinic.view",
    response=ClinicOut,
)
def get_clinic(clinic_slug: str):
    """The clinic's profile and whether its LINE channel is connected."""
    return clinic_out(g.clinic)


@operation(
    api_bp,
    "GET",
    "/clinics/<clinic_slug>/audit-events",
    summary="List audit events",
    tag="audit",
    permission="audit.view",
    query=AuditQuery,
    response=AuditPage,
)
def list_audit_events(clinic_slug: str, query: AuditQuery):
    """The clinic's audit log, newest first (sends, views of patients' messages, settings, API calls)."""
    statement = events_for_clinics([g.clinic.id]).order_by(None)
    if query.action and "\x00" in query.action:  # no action holds a NUL (and Postgres cannot compare one)
        statement = statement.where(sa.false())
    elif query.action:
        statement = statement.where(AuditEvent.action.startswith(query.action, autoescape=True))
    rows, cursor = paging.page(statement, AuditEvent.id, query, descending=True)
    data = [
        AuditOut(
            id=e.id, created_at=e.created_at, action=e.action, actor=e.actor_email, target_type=e.target_type,
            target_id=e.target_id, details=e.details or {},
        )
        for e in rows
    ]  # fmt: skip
    return AuditPage(data=data, next_cursor=cursor)
