"""Builders for test data, in the spirit of CTFd's gen_* helpers."""

from __future__ import annotations

import itertools

import pyotp

from saas.auth import services as auth_services
from saas.auth.models import User
from saas.common import utcnow
from saas.extensions import db
from saas.tenancy.models import Agency, Clinic, Organization
from saas.tenancy.scoping import platform_scope
from saas.tenancy.services import add_membership

PASSWORD = "correct horse battery staple"
_seq = itertools.count(1)


def gen_agency(name: str = "テスト代理店") -> Agency:
    n = next(_seq)
    agency = Agency(slug=f"agency-{n}", name=f"{name}{n}")
    db.session.add(agency)
    db.session.commit()
    return agency


def gen_organization(agency: Agency | None = None, name: str = "医療法人テスト会") -> Organization:
    n = next(_seq)
    organization = Organization(slug=f"org-{n}", name=f"{name}{n}", agency_id=agency.id if agency else None)
    db.session.add(organization)
    db.session.commit()
    return organization


def gen_clinic(organization: Organization | None = None, name: str = "テストクリニック", **fields) -> Clinic:
    n = next(_seq)
    organization = organization or gen_organization()
    clinic = Clinic(slug=f"clinic-{n}", name=f"{name}{n}", organization_id=organization.id, **fields)
    db.session.add(clinic)
    db.session.commit()
    return clinic


def gen_user(role: str = "viewer", *, two_factor: bool | None = None, password: str = PASSWORD, **scope) -> User:
    """A user with one membership; roles that read patients' messages get TOTP unless told not to."""
    n = next(_seq)
    with platform_scope("test factory"):
        user = auth_services.create_user(f"user{n}@example.jp", f"スタッフ{n}", password)
        add_membership(user, role, **scope)
        db.session.flush()
        if two_factor if two_factor is not None else user.needs_two_factor:
            auth_services.start_totp_enrolment(user)
            user.totp_enabled_at = utcnow()
        db.session.commit()
    return user


def totp_code(user: User) -> str:
    return pyotp.TOTP(user.totp_secret).now()
