"""Walks every route of the app, so a route added tomorrow is covered without editing this file.

1. Every route that takes ``<clinic>``, requested (GET and POST, with a valid CSRF token) by a
   signed-in owner of clinic A for clinic B: refused with 403/404, and no row anywhere changed.
2. The same routes at clinic A but with the ids of clinic B's rows in the URL: refused, and
   none of clinic B's rows changed.
3. Every mutating route (any URL) without a CSRF token, by a signed-in owner of the right
   clinic: refused with 400 and nothing changed; CSRF-exempt endpoints (webhooks) are skipped.

Clinic B gets one generated row in every clinic-owned table (found from the metadata), so the
ids in the URLs are real rows of the other tenant whenever a table matches the parameter.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import traceback
from datetime import date, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from werkzeug.routing import IntegerConverter, Rule

import saas
from saas.audit.services import record
from saas.common import utcnow
from saas.extensions import csrf, db
from saas.tenancy.scoping import platform_scope
from tests.conftest import csrf_token
from tests.factories import gen_clinic, gen_organization, gen_user
from tests.helpers import login

MUTATING = {"POST", "PUT", "PATCH", "DELETE"}
WALKED = MUTATING | {"GET"}
_unique = itertools.count(1)


# ---- seeding one row per clinic-owned table --------------------------------------------------


def _dummy(column: sa.Column):
    n = next(_unique)
    python_type = None
    with contextlib.suppress(NotImplementedError):
        python_type = column.type.python_type
    if isinstance(column.type, sa.Enum) and column.type.enums:
        return column.type.enums[0]
    if python_type is bool:
        return False
    if python_type is int:
        return n
    if python_type is float:
        return float(n)
    if python_type is datetime:
        return datetime(2030, 1, 1, 9, 0)
    if python_type is date:
        return date(2030, 1, 1)
    if python_type in (dict, list):
        return python_type()
    length = getattr(column.type, "length", None) or 40
    return f"walker{n}"[:length]


def _needs_value(column: sa.Column) -> bool:
    return not (
        column.primary_key or column.nullable or column.default is not None or column.server_default is not None
    )


def _referenced_id(column: sa.Column, owners: dict[str, int], seeded: dict[str, int]) -> int | None:
    (foreign_key,) = column.foreign_keys
    table = foreign_key.column.table.name
    if table in owners:
        return owners[table]
    if table in seeded:
        return seeded[table]
    return db.session.execute(sa.select(sa.func.min(foreign_key.column))).scalar()


def seed_every_clinic_table(clinic_id: int, owners: dict[str, int]) -> dict[str, int]:
    """Insert one row owned by the clinic into every table with a clinic_id; {table: id}."""
    seeded: dict[str, int] = {}
    with platform_scope("route walker: seeding the other tenant"):
        for table in db.metadata.sorted_tables:
            if "clinic_id" not in table.c or table.name in owners or "id" not in table.c:
                continue
            values = {"clinic_id": clinic_id}
            for column in table.columns:
                if column.name in values or not (_needs_value(column) or column.foreign_keys):
                    continue
                if column.foreign_keys:
                    referenced = _referenced_id(column, owners, seeded)
                    if referenced is not None or not column.nullable:
                        values[column.name] = referenced
                else:
                    values[column.name] = _dummy(column)
            try:
                with db.session.begin_nested():
                    seeded[table.name] = db.session.execute(table.insert().values(values)).inserted_primary_key[0]
            except sa.exc.SQLAlchemyError:
                pass  # a table whose constraints a generic row cannot meet; its ids fall back to dummies
        db.session.commit()
    return seeded


# ---- snapshots --------------------------------------------------------------------------------


def snapshot(only_clinic: int | None = None) -> dict[str, list]:
    """Every row of every table (or only the rows of one clinic), as plain tuples."""
    state = {}
    with platform_scope("route walker: snapshot"):
        for table in db.metadata.sorted_tables:
            columns = [
                sa.type_coerce(c, sa.Text) if c.type.__class__.__name__ == "EncryptedText" else c for c in table.c
            ]
            statement = sa.select(*columns)
            if only_clinic is not None:
                if "clinic_id" not in table.c:
                    continue
                statement = statement.where(table.c.clinic_id == only_clinic)
            rows = db.session.execute(statement).all()
            state[table.name] = sorted(tuple(str(v) for v in row) for row in rows)
    db.session.rollback()
    return state


def assert_unchanged(before: dict, after: dict, what: str) -> None:
    changed = [name for name in before if before[name] != after.get(name)]
    assert not changed, f"{what} changed rows in: {changed}"


# ---- routes -----------------------------------------------------------------------------------


def _is_csrf_exempt(app, rule: Rule) -> bool:
    view = app.view_functions[rule.endpoint]
    if f"{view.__module__}.{view.__name__}" in csrf._exempt_views:
        return True
    blueprint = rule.endpoint.rpartition(".")[0]
    return bool(blueprint) and app.blueprints.get(blueprint) in csrf._exempt_blueprints


def _table_for(argument: str, seeded: dict[str, int]) -> str | None:
    stem = argument.removesuffix("_id")
    for name in seeded:
        if name == stem or name.endswith("_" + stem) or name == stem + "s":
            return name
    return None


def fill(rule: Rule, clinic_slug: str, seeded: dict[str, int]) -> tuple[str, bool]:
    """The URL of a rule for a clinic, with ids of seeded rows; and whether any id was a real row."""
    values, used_real_row = {}, False
    for argument in rule.arguments:
        if argument in ("clinic", "clinic_slug"):
            values[argument] = clinic_slug
        elif isinstance(rule._converters.get(argument), IntegerConverter):
            table = _table_for(argument, seeded)
            used_real_row |= table is not None
            values[argument] = seeded[table] if table else 987654
        else:
            values[argument] = "walker"
    return rule.build(values)[1], used_real_row


def clinic_rules(app) -> list[Rule]:
    return [r for r in app.url_map.iter_rules() if "clinic" in r.arguments]


# ---- the walk ---------------------------------------------------------------------------------


@pytest.fixture
def two_tenants(app):
    clinic_a, clinic_b = gen_clinic(gen_organization()), gen_clinic(gen_organization())
    owner_a = gen_user("owner", clinic=clinic_a)
    staff_b = gen_user("admin", clinic=clinic_b)
    seeded_b = seed_every_clinic_table(clinic_b.id, {"clinic": clinic_b.id, "user": staff_b.id})
    seeded_b["membership"] = staff_b.memberships[0].id
    record("message.send", clinic_id=clinic_b.id, actor=staff_b)
    db.session.commit()
    return clinic_a, clinic_b, owner_a, seeded_b


def _walk(client, rules, clinic_slug, seeded, *, with_token=True):
    token = csrf_token(client)
    for rule in rules:
        url, real = fill(rule, clinic_slug, seeded)
        for method in sorted(WALKED & rule.methods):
            data = {"csrf_token": token} if with_token and method != "GET" else None
            yield rule, method, url, real, client.open(url, method=method, data=data)


def test_walker_discovers_the_clinic_routes_of_every_capability(app):
    endpoints = {rule.endpoint for rule in clinic_rules(app)}
    assert {"portal.clinic_dashboard", "audit.index", "members.index", "members.change_role"} <= endpoints


def test_another_clinics_user_is_refused_everywhere_and_changes_nothing(client, two_tenants):
    clinic_a, clinic_b, owner_a, seeded_b = two_tenants
    login(client, owner_a)
    before = snapshot()
    walked = 0
    for rule, method, url, _real, response in _walk(client, clinic_rules(client.application), clinic_b.slug, seeded_b):
        walked += 1
        assert response.status_code in (403, 404), f"{method} {url} ({rule.endpoint}) gave {response.status_code}"
    assert walked >= 5
    assert_unchanged(before, snapshot(), "requests for another clinic")


def test_ids_of_another_clinics_rows_are_refused_at_ones_own_clinic(client, two_tenants):
    clinic_a, clinic_b, owner_a, seeded_b = two_tenants
    login(client, owner_a)
    before = snapshot(only_clinic=clinic_b.id)
    for rule, method, url, real, response in _walk(client, clinic_rules(client.application), clinic_a.slug, seeded_b):
        if not real:
            continue  # no row of B behind this parameter: nothing to steal
        refused = response.status_code in (400, 403, 404, 409, 410, 422)
        if method == "GET":
            assert refused, f"GET {url} ({rule.endpoint}) showed clinic B's row: {response.status_code}"
        else:
            assert refused or response.status_code in (302, 303), f"{method} {url} gave {response.status_code}"
    assert_unchanged(before, snapshot(only_clinic=clinic_b.id), "requests with clinic B's ids")


def test_every_mutating_route_without_csrf_token_is_refused(client, two_tenants):
    clinic_a, _clinic_b, owner_a, _seeded = two_tenants
    app = client.application
    seeded_a = seed_every_clinic_table(clinic_a.id, {"clinic": clinic_a.id, "user": owner_a.id})
    seeded_a["membership"] = owner_a.memberships[0].id
    login(client, owner_a)
    rules = [r for r in app.url_map.iter_rules() if MUTATING & r.methods and not _is_csrf_exempt(app, r)]
    assert any(r.endpoint == "auth.logout" for r in rules)
    before = snapshot()
    for rule in rules:
        url, _ = fill(rule, clinic_a.slug, seeded_a)
        for method in sorted(MUTATING & rule.methods):
            response = client.open(url, method=method, data={"anything": "1"})
            assert response.status_code == 400, f"{method} {url} ({rule.endpoint}) without CSRF token"
    assert_unchanged(before, snapshot(), "requests without a CSRF token")
    assert client.get(f"/c/{clinic_a.slug}/").status_code == 200  # still signed in: logout was refused too


# ---- every view of patient text is audited (GL 6.0 §17, issue 10 item 12) --------------------

MARKER = "患者の秘密マーカーZQX"
VIEW_ACTIONS = ("conversation.view", "friends.export")


def _patient_with_marked_conversation(clinic) -> dict[str, int]:
    from saas.friends.models import Friend, Message
    from saas.tenancy.scoping import tenant_scope
    from saas.webhooks.models import WebhookEvent

    with tenant_scope(clinic.id):
        friend = Friend(line_user_id="U" + "a" * 32, display_name="佐藤 花子", attributes={})
        db.session.add(friend)
        db.session.flush()
        inbound = Message(friend_id=friend.id, direction="in", kind="text", text=f"腰が痛いです {MARKER}")
        event = WebhookEvent(
            webhook_event_id="walker-event",
            event_type="message",
            line_user_id=friend.line_user_id,
            payload={"message": {"type": "text", "text": MARKER}},
            occurred_at=utcnow(),
        )
        db.session.add_all([inbound, event])
        friend.last_message_at = utcnow()
        db.session.commit()
        return {"friend": friend.id, "message": inbound.id, "webhook_event": event.id}


def _view_events() -> int:
    from saas.audit.models import AuditEvent

    db.session.rollback()
    return db.session.scalar(sa.select(sa.func.count(AuditEvent.id)).where(AuditEvent.action.in_(VIEW_ACTIONS)))


def test_every_page_that_shows_patient_text_writes_a_view_audit_event(client, app):
    clinic = gen_clinic(gen_organization())
    owner = gen_user("owner", clinic=clinic)
    seeded = _patient_with_marked_conversation(clinic)
    login(client, owner)
    shown, unaudited = [], []
    for rule in app.url_map.iter_rules():
        if "GET" not in rule.methods or rule.endpoint == "static" or rule.endpoint.startswith("sandbox"):
            continue
        url, _ = fill(rule, clinic.slug, seeded)
        before = _view_events()
        response = client.get(url)
        if MARKER not in response.get_data(as_text=True):
            continue
        shown.append(rule.endpoint)
        if _view_events() == before:
            unaudited.append(f"{rule.endpoint} ({url})")
    assert {"inbox.conversation", "inbox.index", "friends.detail"} <= set(shown), shown
    assert not unaudited, f"patient text shown without a conversation.view audit event: {unaudited}"


# ---- ids larger than any key ------------------------------------------------------------------


@pytest.mark.parametrize("huge", [2**31, 2**63 - 1, 2**63, 10**30])
def test_an_id_larger_than_any_key_is_not_found_on_every_route(client, huge):
    clinic = gen_clinic(gen_organization())
    login(client, gen_user("owner", clinic=clinic))
    token, walked = csrf_token(client), 0
    for rule in clinic_rules(client.application):
        ids = [a for a in rule.arguments if isinstance(rule._converters.get(a), IntegerConverter)]
        if not ids:
            continue
        values = {a: clinic.slug if a == "clinic" else huge if a in ids else "walker" for a in rule.arguments}
        url = rule.build(values)[1]
        for method in sorted(WALKED & rule.methods):
            response = client.open(url, method=method, data={"csrf_token": token} if method != "GET" else None)
            walked += 1
            assert response.status_code < 500, f"{method} {url} ({rule.endpoint}) gave {response.status_code}"
    assert walked >= 50
    for path in (f"deliveries/{huge}", f"friends/{huge}", f"analytics/deliveries/{huge}/"):
        assert client.get(f"/c/{clinic.slug}/{path}").status_code == 404


# ---- fields with values no parser expects -----------------------------------------------------

FIELD_READ = re.compile(r'(?:form|args|values)\.get(?:list)?\(\s*"([A-Za-z_]+)"')
NOT_FUZZED = {"csrf_token", "lang"}


def _fields_the_code_reads() -> list[str]:
    names = set()
    for path in Path(saas.__file__).parent.rglob("*.py"):
        names.update(FIELD_READ.findall(path.read_text(encoding="utf-8")))
    return sorted(names - NOT_FUZZED)


def _every_rule_but_the_sandboxes(app) -> list[Rule]:
    ending_the_session = {"auth.logout", "auth.end_session", "auth.end_other_sessions"}
    return [
        r
        for r in app.url_map.iter_rules()
        if r.endpoint != "static" and "sandbox" not in r.endpoint and r.endpoint not in ending_the_session
    ]


@pytest.mark.parametrize("bad", ["²", "9" * 30, "abc"], ids=["superscript-digit", "huge", "letters"])
def test_every_field_the_code_reads_given_a_value_it_cannot_use_is_never_a_500(client, bad):
    """``"²".isdigit()`` is true but ``int("²")`` fails; 30 digits overflow every integer column."""
    clinic = gen_clinic(gen_organization())
    owner = gen_user("owner", clinic=clinic)
    seeded = seed_every_clinic_table(clinic.id, {"clinic": clinic.id, "user": owner.id})
    login(client, owner)
    fields = _fields_the_code_reads()
    assert {"tag_id", "scenario_id", "after", "selected"} <= set(fields)
    token, failures = csrf_token(client), []
    for rule in _every_rule_but_the_sandboxes(client.application):
        url, _real = fill(rule, clinic.slug, seeded)
        for method in sorted(WALKED & rule.methods):
            values = dict.fromkeys(fields, bad)
            try:
                if method == "GET":
                    status = client.get(url, query_string=values).status_code
                else:
                    status = client.open(url, method=method, data={**values, "csrf_token": token}).status_code
            except Exception as error:  # testing propagates what a user would see as a 500
                where = next(f for f in reversed(traceback.extract_tb(error.__traceback__)) if "/saas/" in f.filename)
                status = f"{type(error).__name__}: {error} at {Path(where.filename).name}:{where.lineno}"
            if not isinstance(status, int) or status == 500:  # 503: a service deliberately not set up
                failures.append(f"{method} {url} ({rule.endpoint}): {status}")
            db.session.rollback()
    assert not failures, f"answered 500 for {bad!r} in every field:\n" + "\n".join(failures)
    assert client.get(f"/c/{clinic.slug}/friends").status_code == 200, "the walk signed itself out part-way"
