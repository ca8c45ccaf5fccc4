"""Test helpers shared across capabilities: signing in and probing tenant isolation."""

from __future__ import annotations

import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm.attributes import flag_modified

from saas.extensions import db
from saas.tenancy.scoping import TenantScopeError, platform_scope, tenant_scope
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


def assert_counts_isolated(table: sa.Table, a_id: int, b_id: int) -> None:
    """Every way of counting or aggregating a clinic-owned table from A's scope sees only A's rows.

    Both clinics must own rows of ``table``; the ways are the ones a view would write: ``db.paginate``
    (whose count wraps the query in a subquery), Core ``select()`` on the table, aggregates, scalar
    subqueries, EXISTS, UNION, aliases, and bulk INSERT/UPDATE/DELETE through the Core table.
    """
    with platform_scope("test: the true counts"):
        expected = db.session.scalar(sa.select(sa.func.count()).select_from(table).where(table.c.clinic_id == a_id))
        b_row = db.session.scalar(sa.select(table.c.id).where(table.c.clinic_id == b_id).limit(1))
    db.session.rollback()
    assert expected and b_row, f"{table.name}: both clinics need rows for this probe"
    other = table.alias("other")
    count = sa.func.count
    with tenant_scope(a_id):
        ways = {
            "paginate total": db.paginate(sa.select(table), per_page=1, error_out=False).total,
            "count(*) on the table": db.session.scalar(sa.select(count()).select_from(table)),
            "count over a subquery": db.session.scalar(
                sa.select(count()).select_from(sa.select(table.c.id).subquery())
            ),
            "count of an alias": db.session.scalar(sa.select(count(other.c.id))),
            "distinct clinics": db.session.scalar(sa.select(count(sa.distinct(table.c.clinic_id)))) * expected,
            "scalar subquery": db.session.scalar(sa.select(sa.select(count(table.c.id)).scalar_subquery())),
            "union": len(db.session.execute(sa.union_all(sa.select(table.c.id), sa.select(table.c.id))).all()) // 2,
            "EXISTS of B's row": expected + db.session.scalar(sa.select(sa.exists().where(table.c.id == b_row))),
            "outer join keeps A's rows": db.session.scalar(
                sa.select(count()).select_from(table.outerjoin(other, other.c.id == table.c.id))
            ),
            "outer join hides B's row": expected
            + db.session.scalar(sa.select(count(other.c.id)).select_from(table.outerjoin(other, other.c.id == b_row))),
            "max(clinic_id) is A": expected
            if db.session.scalar(sa.select(sa.func.max(table.c.clinic_id))) == a_id
            else -1,
        }
        wrong = {way: n for way, n in ways.items() if n != expected}
        assert not wrong, f"{table.name}: A has {expected} rows but from A's scope {wrong}"
        assert db.session.execute(sa.update(table).where(table.c.id == b_row).values(clinic_id=a_id)).rowcount == 0
        assert db.session.execute(sa.delete(table).where(table.c.id == b_row)).rowcount == 0
        for statement in (sa.update(table).values(clinic_id=b_id), sa.insert(table).values(clinic_id=b_id)):
            try:
                db.session.execute(statement)
            except TenantScopeError:
                pass
            else:
                raise AssertionError(f"{table.name}: {statement} wrote clinic B's rows from A's scope")
    db.session.rollback()


def assert_insert_from_select_stays_in_scope(table: sa.Table, a_id: int, b_id: int) -> None:
    """``INSERT … SELECT`` from A's scope copies only A's rows and cannot write B's clinic id."""
    source = db.metadata.tables["friend"]
    with tenant_scope(a_id):
        for clinic_id in (sa.literal(b_id), source.c.id):
            statement = sa.insert(table).from_select(["clinic_id"], sa.select(clinic_id).select_from(source))
            try:
                db.session.execute(statement)
            except TenantScopeError:
                pass
            else:
                raise AssertionError(f"INSERT … SELECT into {table.name} with clinic_id {clinic_id} was allowed")
    db.session.rollback()


def original_url(url: str) -> str:
    """The URL a sent short link (``…/l/<code>``, saas.links) stands for; any other URL as it is."""
    from saas.links import services as links

    code = url.rsplit("/l/", 1)[-1] if "/l/" in url else ""
    target = links.find(code) if links.is_code(code) else None
    return target.url if target else url
