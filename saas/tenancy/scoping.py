"""Tenant isolation, enforced in one place at the ORM layer.

Every clinic-owned model inherits :class:`TenantOwned`. A ``do_orm_execute`` hook adds
``clinic_id IN (<clinics in scope>)`` to every ORM query that touches such a model (on Postgres
``clinic_id = ANY(<one array parameter>)``: an agency's 1,000 clinics are one parameter, not
1,000 for the driver to parse in each of a page's criteria; see :func:`clinic_in`), and a
``before_flush`` hook refuses to write a row outside the scope. The scope is a context
variable, set per request from the URL (see ``saas.tenancy.views``) and per job by
``tenant_scope(clinic_id)``. Code that must see every clinic (platform jobs, migrations,
the demo loader) says so with ``platform_scope("reason")`` — grep for it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapped, Mapper, Session, declared_attr, mapped_column, with_loader_criteria
from sqlalchemy.sql import visitors
from sqlalchemy.sql.elements import BindParameter, ClauseElement, ColumnClause, ColumnElement, Label, TextClause
from sqlalchemy.sql.selectable import Alias, Join, SelectBase, TableClause


class TenantScopeError(RuntimeError):
    """A clinic-owned row was queried or written outside any tenant scope, or across it."""


@dataclass(frozen=True)
class TenantScope:
    clinic_ids: frozenset[int] | None  # None: platform scope, every clinic
    reason: str = ""

    @property
    def is_platform(self) -> bool:
        return self.clinic_ids is None


_current_scope: ContextVar[TenantScope | None] = ContextVar("tenant_scope", default=None)


class TenantOwned:
    """Mixin for every table whose rows belong to one clinic."""

    @declared_attr
    def clinic_id(cls) -> Mapped[int]:
        return mapped_column(sa.ForeignKey("clinic.id", ondelete="CASCADE"), index=True, nullable=False)


def current_scope() -> TenantScope | None:
    return _current_scope.get()


@functools.lru_cache(maxsize=256)
def _array_text(ids: tuple[int, ...]) -> str:
    return "{" + ",".join(str(int(i)) for i in ids) + "}"


class _IntegerArrayText(sa.types.UserDefinedType):
    """A parameter typed ``integer[]`` in the SQL (``$1::INTEGER[]``) whose value is the array's text.
    Postgres parses it once per execution, as a parameter. A ``CAST(varchar AS INTEGER[])`` instead
    is an I/O conversion, not a constant: a sequential scan parsed the 1,000 ids again for every
    row (1.2 s for the agency page's 30,000 roll-up rows, per criterion)."""

    cache_ok = True
    render_bind_cast = True

    def get_col_spec(self, **_kw) -> str:
        return "INTEGER[]"


def _ids_array(ids: Iterable[int]):
    """The ids as one Postgres ``integer[]`` parameter, sent as its text form ``{1,2,…}`` (built once
    per set of clinics: psycopg's own list dumper cost ~45 ms for a page's 18 arrays of 1,000)."""
    return sa.bindparam(None, _array_text(tuple(sorted(ids))), type_=_IntegerArrayText())


def integer_array(ids: Iterable[int]):
    """Postgres: ids (a send chunk's 500 friends, say) as one ``integer[]`` parameter in its text
    form, for ``= ANY(…)`` or ``unnest(…)``: psycopg's list dumper cost 0.8 ms of CPU for 500 ids,
    the text 0.2 ms."""
    return sa.bindparam(None, "{" + ",".join(map(str, map(int, ids))) + "}", type_=_IntegerArrayText())


def clinic_in(column, ids: Iterable[int], dialect: str):
    """``column = :id`` for one clinic; for several ``column IN (ids)``, on Postgres
    ``column = ANY(:ids::INTEGER[])``: one bound parameter however many clinics (psycopg parses
    every placeholder of a statement on each execution: 18 lists of 1,000 were ~45% of the agency
    page's time).

    One clinic is an equality because an ORM query carries the criterion twice (here and from
    ``with_loader_criteria``): Postgres merges two equalities into one, but multiplies the
    selectivities of two ``= ANY`` (a clinic's 1-in-100 rows estimated as 1 in 10,000), and
    chose nested loops on that estimate."""
    ids = tuple(ids)
    if len(ids) == 1:
        return column == ids[0]
    if dialect == "postgresql":
        return column == sa.any_(_ids_array(ids))
    return column.in_(sorted(ids))


def _loader_criterion(allowed: tuple[int, ...], dialect: str):
    """:func:`clinic_in` for ``with_loader_criteria``, whose lambda SQLAlchemy caches by its code:
    its closure holds only the tuple (a tracked literal) or the array parameter (a SQL element),
    never the dialect, so the cached SQL takes this request's clinics each time."""
    if len(allowed) == 1:
        clinic_id = allowed[0]
        return lambda cls: cls.clinic_id == clinic_id
    if dialect == "postgresql":
        ids = _ids_array(allowed)
        return lambda cls: cls.clinic_id == sa.any_(ids)
    return lambda cls: cls.clinic_id.in_(allowed)


def dialect_name() -> str:
    """The dialect of the application's database (for :func:`clinic_in` outside a query hook)."""
    from saas.extensions import db

    return db.session.get_bind().dialect.name


@contextmanager
def _scoped(scope: TenantScope) -> Iterator[TenantScope]:
    token = _current_scope.set(scope)
    try:
        yield scope
    finally:
        _current_scope.reset(token)


def tenant_scope(clinic_ids: int | Iterable[int]) -> contextmanager:
    """Limit every ORM query and write in the block to the given clinic(s)."""
    ids = frozenset([clinic_ids]) if isinstance(clinic_ids, int) else frozenset(clinic_ids)
    return _scoped(TenantScope(ids))


def platform_scope(reason: str) -> contextmanager:
    """The escape hatch: see every clinic's rows. Use only for platform work; say why."""
    return _scoped(TenantScope(None, reason))


def enter_scope(scope: TenantScope | None):
    """Set the scope for the rest of a request; returns a token for :func:`leave_scope`."""
    return _current_scope.set(scope)


def leave_scope(token) -> None:
    _current_scope.reset(token)


def _tenant_tables() -> frozenset[str]:
    """The names of the tables of every clinic-owned model (worked out again when a mapper is added)."""
    names = _table_cache.get("names")
    if names is None:
        from saas.extensions import db

        mappers = db.Model.registry.mappers
        names = frozenset(
            m.local_table.name for m in mappers if issubclass(m.class_, TenantOwned) and hasattr(m.local_table, "name")
        )
        _table_cache["names"] = names
    return names


_table_cache: dict = {}


@event.listens_for(Mapper, "after_mapper_constructed")
def _forget_tenant_tables(_mapper, _class) -> None:
    _table_cache.clear()


def _tenant_from(element, tenant: frozenset[str]):
    """The table or alias of a clinic-owned table that ``element`` is, or None."""
    if isinstance(element, TableClause):
        return element if element.name in tenant else None
    if isinstance(element, Alias) and isinstance(element.element, TableClause):
        return element if element.element.name in tenant else None
    return None


def _direct_tenant_froms(clauses: Iterable, tenant: frozenset[str]) -> list:
    """Clinic-owned tables (or aliases) used by these clauses themselves, not by nested SELECTs.

    Nested SELECTs (subqueries, EXISTS, scalar subqueries, CTEs) are scoped on their own.
    """
    found, seen = [], set()
    stack = [c for c in clauses if c is not None]
    while stack:
        element = stack.pop()
        if isinstance(element, SelectBase):
            continue
        candidate = _tenant_from(element, tenant)
        if candidate is None and isinstance(element, ColumnClause) and element.table is not None:
            candidate = _tenant_from(element.table, tenant)
        if candidate is not None:
            if hash(candidate) not in seen:  # an ORM-annotated table hashes as the table itself
                seen.add(hash(candidate))
                found.append(candidate)
            continue
        if isinstance(element, Alias):
            continue  # an alias of something else: its columns are what the statement uses
        stack.extend(element.get_children())
    return found


def _criterion(from_clause, allowed: tuple[int, ...], dialect: str):
    if "clinic_id" not in from_clause.c:
        raise TenantScopeError(f"{from_clause} is clinic-owned but has no clinic_id column here")
    return clinic_in(from_clause.c.clinic_id, allowed, dialect)


def _scope_where(statement, froms: list, allowed: tuple[int, ...], dialect: str) -> None:
    """Append ``clinic_id IN (...)`` for each clinic-owned FROM (on a fresh clone)."""
    if froms:
        statement._where_criteria = statement._where_criteria + tuple(_criterion(f, allowed, dialect) for f in froms)


def _row_clinic_ids(values) -> Iterator:
    for key, value in (values or {}).items():
        if getattr(key, "key", key) == "clinic_id":
            yield value.value if isinstance(value, BindParameter) else value


def _refuse_foreign_clinic(ids: Iterable, allowed: tuple[int, ...], table: str) -> None:
    for clinic_id in ids:
        if clinic_id not in allowed:
            raise TenantScopeError(f"bulk write of {table} for clinic {clinic_id} from the scope of {list(allowed)}")


def _insert_rows(statement) -> list[dict]:
    if statement._multi_values:
        return [row for batch in statement._multi_values for row in batch]
    return [statement._values] if statement._values else []


_REWRITTEN = frozenset({"select", "update", "delete", "insert", "join"})


def _scoped_statement(statement, tenant: frozenset[str], allowed: tuple[int, ...], dialect: str):
    """A copy of the statement in which every SELECT, UPDATE and DELETE of a clinic-owned table
    (at any depth: subqueries, counts, EXISTS, CTEs, unions) carries the tenant criterion, and
    in which INSERTs and UPDATEs write only rows of the clinics in scope.

    When the statement itself is the only part to rewrite (no subquery, join or nested statement),
    a shallow copy of it takes the criteria: cloning every column of it cost about a millisecond
    of CPU per statement, a quarter of a send chunk's. Anything nested is cloned and rewritten
    at every depth, as before."""
    visit = _rewriters(tenant, allowed, dialect)
    options, nested = _options_and_nesting(statement)
    if not nested and statement.__visit_name__ in visit:
        copy = statement._generate()
        visit[statement.__visit_name__](copy)
        return copy
    return visitors.cloned_traverse(statement, {"stop_on": options}, visit)


def _options_and_nesting(statement) -> tuple[list, bool]:
    """The statement's loader options at any depth (the clone leaves them alone) and whether any
    element below the statement itself is one the scoping rewrites."""
    options, nested = [], bool(getattr(statement, "_memoized_select_entities", ()))
    for element in visitors.iterate(statement):
        options.extend(getattr(element, "_with_options", ()))
        if element is not statement:
            nested = nested or element.__visit_name__ in _REWRITTEN or _select_behind(element) is not None
    return options, nested


def _select_behind(element):
    """The SELECT of a subquery or CTE that a column (``subquery.c.name``) reads from, or None:
    traversal does not go from a column to its table, so such a SELECT is reached another way."""
    table = getattr(element, "table", None) if isinstance(element, ColumnClause) else None
    inner = getattr(table, "element", None)
    return inner if isinstance(inner, SelectBase) else None


def _reads_a_select(value) -> bool:
    return isinstance(value, ClauseElement) and any(
        isinstance(e, SelectBase) or _select_behind(e) is not None for e in visitors.iterate(value)
    )


def _refuse_subqueries_read_by_columns(clauses: Iterable, tenant: frozenset[str], what: str) -> None:
    """An UPDATE or DELETE whose WHERE or SET reads a clinic-owned table through a subquery's
    columns (``UPDATE … FROM (SELECT …)``): that SELECT is not scoped, so the statement is refused."""
    for clause in clauses:
        for element in visitors.iterate(clause):
            inner = _select_behind(element)
            if inner is not None and any(_tenant_from(e, tenant) is not None for e in visitors.iterate(inner)):
                raise TenantScopeError(f"{what} reads a clinic-owned table through a subquery's columns: use EXISTS")


def _scoped_by_cloning(statement, tenant: frozenset[str], allowed: tuple[int, ...], dialect: str):
    """The whole statement cloned and rewritten at every depth (what the shallow copy must equal)."""
    options, _ = _options_and_nesting(statement)
    return visitors.cloned_traverse(statement, {"stop_on": options}, _rewriters(tenant, allowed, dialect))


def _rewriters(tenant: frozenset[str], allowed: tuple[int, ...], dialect: str) -> dict:
    """The visitors that add the tenant criteria to each kind of element, by visit name."""

    def on_clause(onclause, target):
        """Criteria for an outer-joined table go into its ON clause (WHERE would drop the NULL rows)."""
        if isinstance(onclause, ColumnElement):
            return sa.and_(onclause, _criterion(target, allowed, dialect))
        if "parententity" in target._annotations:
            return onclause  # an ORM relationship join: with_loader_criteria puts it in the ON clause
        raise TenantScopeError(f"outer join to {target} without an ON clause: give one")

    def visit_join(join) -> None:
        target = _tenant_from(join.right, tenant)
        if target is not None and (join.isouter or join.full):
            join.onclause = on_clause(join.onclause, target)

    def visit_select(select) -> None:
        outer, joins = set(), []
        for target, onclause, from_, flags in select._setup_joins:
            joined = _tenant_from(target, tenant) if flags.get("isouter") or flags.get("full") else None
            if joined is not None:
                outer.add(hash(joined))
                onclause = on_clause(onclause, joined)
            joins.append((target, onclause, from_, flags))
        select._setup_joins = tuple(joins)
        for from_ in select._from_obj:
            for join in visitors.iterate(from_):
                if (
                    isinstance(join, Join)
                    and (join.isouter or join.full)
                    and _tenant_from(join.right, tenant) is not None
                ):
                    outer.add(hash(_tenant_from(join.right, tenant)))
        clauses = (
            *select._raw_columns,
            *select._from_obj,
            *select._where_criteria,
            *select._having_criteria,
            *[part for join in select._setup_joins for part in join[:3]],
            *_replaced_columns_and_joins(select),
        )
        froms = [f for f in _direct_tenant_froms(clauses, tenant) if hash(f) not in outer]
        _scope_where(select, froms, allowed, dialect)

    def visit_dml(dml) -> None:
        target = _tenant_from(dml.table, tenant)
        values = [
            *(getattr(dml, "_values", None) or {}).values(),
            *(v for _, v in getattr(dml, "_ordered_values", None) or ()),
        ]
        _refuse_subqueries_read_by_columns([*dml._where_criteria, *values], tenant, dml.__visit_name__.upper())
        others = _direct_tenant_froms(dml._where_criteria, tenant)
        froms = [target, *[f for f in others if f is not target]] if target is not None else others
        _scope_where(dml, froms, allowed, dialect)
        if target is not None and dml.__visit_name__ == "update":
            values = dml._values
            _refuse_foreign_clinic(_row_clinic_ids(values), allowed, target.name)

    def visit_insert(insert) -> None:
        target = _tenant_from(insert.table, tenant)
        if target is None:
            return
        if insert.select is not None:
            _check_insert_from_select(insert, target.name, tenant, allowed)
            return
        if insert._multi_values and any(
            _reads_a_select(value) for row in _insert_rows(insert) for value in row.values()
        ):
            # the traversal does not reach into multi-row VALUES: a SELECT there would go unscoped
            raise TenantScopeError(f"multi-row INSERT into {target.name} with a subquery in its values")
        _refuse_foreign_clinic((i for row in _insert_rows(insert) for i in _row_clinic_ids(row)), allowed, target.name)

    return {
        "join": visit_join,
        "select": visit_select,
        "update": visit_dml,
        "delete": visit_dml,
        "insert": visit_insert,
    }


def _replaced_columns_and_joins(select) -> list:
    """What ``with_only_columns()`` set aside (the columns and joins before it) still renders in
    FROM: its tables take the criteria too. An outer join there cannot be given an ON criterion."""
    parts = []
    for entities in getattr(select, "_memoized_select_entities", ()):
        for target, onclause, from_, flags in entities._setup_joins:
            if flags.get("isouter") or flags.get("full"):
                raise TenantScopeError("outer join before with_only_columns(): join after choosing the columns")
            parts += [part for part in (target, onclause, from_) if part is not None]
        parts += list(entities._raw_columns)
    return parts


def _check_insert_from_select(insert, table: str, tenant: frozenset[str], allowed: tuple[int, ...]) -> None:
    """``INSERT … SELECT``: the SELECT is scoped like any other; its clinic_id must be a literal
    in scope or the clinic_id of a (scoped) clinic-owned table."""
    names = [getattr(name, "key", name) for name in insert._select_names]
    if "clinic_id" not in names:
        raise TenantScopeError(f"INSERT … SELECT into {table} without clinic_id")
    source = list(insert.select.selected_columns)[names.index("clinic_id")]
    source = getattr(source, "element", source) if isinstance(source, Label) else source
    if isinstance(source, BindParameter):
        _refuse_foreign_clinic([source.value], allowed, table)
    elif not (isinstance(source, ColumnClause) and source.name == "clinic_id" and _tenant_from(source.table, tenant)):
        raise TenantScopeError(f"INSERT … SELECT into {table}: clinic_id must be a literal or a clinic_id column")


def _touches_tenant_tables(execute_state, tenant: frozenset[str]) -> bool:
    if any(issubclass(mapper.class_, TenantOwned) for mapper in execute_state.all_mappers):
        return True
    statement = execute_state.statement
    if isinstance(statement, TextClause):
        words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", statement.text.lower()))
        return bool(words & tenant)
    return any(_tenant_from(element, tenant) is not None for element in visitors.iterate(statement))


def _check_parameters(execute_state, allowed: tuple[int, ...]) -> None:
    """executemany-style rows (``session.execute(insert(Model), rows)``) name their clinic."""
    params = execute_state.parameters
    rows = params if isinstance(params, list) else [params] if params else []
    statement = execute_state.statement
    if not (execute_state.is_insert or execute_state.is_update):
        return
    for row in rows:
        if execute_state.is_insert and "clinic_id" not in row and not _insert_rows(statement):
            raise TenantScopeError("bulk INSERT of clinic-owned rows without clinic_id")
        _refuse_foreign_clinic(_row_clinic_ids(row), allowed, getattr(statement.table, "name", "?"))


def _add_tenant_criteria(execute_state) -> None:
    """Scope every statement run through a session that touches a clinic-owned table."""
    tenant = _tenant_tables()
    if not _touches_tenant_tables(execute_state, tenant):
        return
    scope = _current_scope.get()
    if scope is None:
        raise TenantScopeError("clinic-owned rows queried outside a tenant scope")
    if scope.is_platform:
        return
    if isinstance(execute_state.statement, TextClause):
        raise TenantScopeError("raw SQL on clinic-owned tables is for platform scope only")
    allowed = tuple(sorted(scope.clinic_ids))
    _check_parameters(execute_state, allowed)
    dialect = execute_state.session.get_bind().dialect.name
    statement = _scoped_statement(execute_state.statement, tenant, allowed, dialect)
    if execute_state.all_mappers and not execute_state.is_insert:
        # Relationship loads and ORM joins add tables when the ORM compiles: cover those too.
        statement = statement.options(
            with_loader_criteria(TenantOwned, _loader_criterion(allowed, dialect), include_aliases=True)
        )
    execute_state.statement = statement


def _check_writes(session: Session, flush_context, instances) -> None:
    scope = _current_scope.get()
    for obj in (*session.new, *session.dirty, *session.deleted):
        if not isinstance(obj, TenantOwned):
            continue
        if scope is None:
            raise TenantScopeError(f"{type(obj).__name__} written outside a tenant scope")
        if scope.is_platform:
            continue
        if obj.clinic_id is None and len(scope.clinic_ids) == 1:
            obj.clinic_id = next(iter(scope.clinic_ids))
        if obj.clinic_id not in scope.clinic_ids:
            raise TenantScopeError(
                f"{type(obj).__name__} of clinic {obj.clinic_id} written from the scope of {sorted(scope.clinic_ids)}"
            )


def install(session_class) -> None:
    """Attach the two hooks to a session class (done once, from create_app)."""
    if not event.contains(session_class, "do_orm_execute", _add_tenant_criteria):
        event.listen(session_class, "do_orm_execute", _add_tenant_criteria)
        event.listen(session_class, "before_flush", _check_writes)
