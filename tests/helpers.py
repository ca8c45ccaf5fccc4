"""Test helpers shared across capabilities: signing in and probing tenant isolation."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm.attributes import flag_modified

from saas.extensions import db
from saas.tenancy.scoping import TenantScopeError, tenant_scope
from tests.conftest import csrf_token
from tests.factories import PASSWORD, totp_code


def login(client, user, password: str = PASSWORD, *, complete_two_factor: bool = True):
    """Sign in through the real login form (and TOTP when the user has it)."""
    response = client.post(
        "/auth/login", data={"email": user.email, "password": password, "csrf_token": csrf_token(client)}
    )
    if complete_two_factor and user.has_two_factor:
        response = client.post("/auth/two-factor", data={"code": totp_code(user), "csrf_token": csrf_token(client)})
    return response


def client_at(app: Flask, address: str):
    """A browser at this network address (for every request it makes)."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    return client


def clinic_routes(app: Flask, methods=("GET",)) -> list[tuple[str, str]]:
    """Every (rule, endpoint) of the app that takes a <clinic>, discovered from the URL map."""
    found = []
    for rule in app.url_map.iter_rules():
        if "clinic" in rule.arguments and set(methods) & (rule.methods or set()):
            found.append((rule.rule, rule.endpoint))
    return found


def assert_rows_isolated(model, row_of_a, row_of_b) -> None:
    """Try every way of reaching clinic B's row from clinic A's scope; each must fail.

    ``row_of_a`` and ``row_of_b`` are committed instances of ``model`` owned by two clinics.
    """
    a_id = row_of_a.clinic_id
    b_pk = row_of_b.id
    db.session.expunge_all()
    with tenant_scope(a_id):
        visible = db.session.scalars(sa.select(model)).all()
        assert visible and all(row.clinic_id == a_id for row in visible), "A's scope must see only A's rows"
        assert db.session.get(model, b_pk) is None, "B's row must not load by primary key from A's scope"
        changed = db.session.execute(sa.update(model).where(model.id == b_pk).values(clinic_id=a_id))
        assert changed.rowcount == 0, "a bulk UPDATE from A's scope must not touch B's row"
        removed = db.session.execute(sa.delete(model).where(model.id == b_pk))
        assert removed.rowcount == 0, "a bulk DELETE from A's scope must not touch B's row"
        db.session.rollback()
        db.session.add(row_of_b)
        flag_modified(row_of_b, "clinic_id")
        try:
            db.session.flush()
        except TenantScopeError:
            db.session.rollback()
        else:
            raise AssertionError("writing a row of clinic B from clinic A's scope must raise TenantScopeError")
    db.session.expunge_all()
