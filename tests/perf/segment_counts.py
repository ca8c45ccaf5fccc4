"""Segment counts for a 100,000-friend clinic in a database of millions of friends (Postgres).

Run (``DATABASE_URL`` names the server; a scratch database ``tsunagu_bench_segments`` is built there)::

    python -m tests.perf.segment_counts                          # 10,000,000 friends in all
    python -m tests.perf.segment_counts --total-friends 3000000 --keep

Data, generated set-based on the server (``INSERT ... SELECT`` over ``generate_series``, the
secondary indexes built after the load, then ``VACUUM ANALYZE``): ``--total-friends`` friends
over one benchmark clinic of ``--friends`` (default 100,000) and ``--other-clinics`` others
(default 1,000). The clinic's friends are spread evenly through the table, as a clinic that
gained patients over years among other clinics' would be (its rows share no pages). Every friend
has two of its clinic's 30 tags, attributes ``age_band`` (one of six), ``interest`` (one of
five) and ``rank`` (``gold`` for 2%) with their typed rows (``friend_attribute``, filled in one
``INSERT ... SELECT``: the load runs without triggers), half of them a value of the clinic's choice field
``plan`` (one of four), a follow date over three years; 10% are blocked, 1 in 7 without
marketing consent.

Measured: the composer's count (``saas.delivery.audience.count_audience``) for typical segments,
``--samples`` times after a warm-up: wall-clock p50/p99 of the call and the server's own
execution time of its one statement (``EXPLAIN ANALYZE``), beside the process's CPU time.
Baseline on the same data and the same statements' old shape: the indexes the segments had
before issue 18 (single-column ``friend.followed_at``, ``friend.status``,
``friend.inflow_source_id``, ``friend_tag.tag_id``, ``friend_field_value (field_id, text)``, no
GIN) and attributes compared as ``json`` text (``attributes::json ->> key = value``); the old
indexes are dropped for the new figures and the new ones for the baseline, each inside a
transaction that is rolled back.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa

from tests.perf import support

START = datetime(2023, 12, 1)
SPAN_SECONDS = 3 * 365 * 24 * 3600
TAGS = 30
PLANS = ("一般", "会員", "学生", "高齢者")
DATABASE = "tsunagu_bench_segments"
# The indexes segment filters had before (created under these names for the baseline).
OLD_INDEXES = {
    "bench_old_friend_followed_at": "friend (followed_at)",
    "bench_old_friend_status": "friend (status)",
    "bench_old_friend_inflow": "friend (inflow_source_id)",
    "bench_old_field_value_text": "friend_field_value (field_id, text)",
    "bench_old_field_value_day": "friend_field_value (field_id, day)",
}
NEW_INDEXES = (
    "ix_friend_recent",
    "ix_friend_clinic_status",
    "ix_friend_clinic_inflow",
    "ix_friend_clinic_last_message",
    "ix_friend_tag_clinic_tag",
    "ix_friend_audience",
    "ix_field_value_text",
    "ix_field_value_day",
    "ix_field_value_number",
)


def segments(tag_base: int, field_id: int) -> dict[str, dict]:
    plan = {"field_id": field_id, "op": "eq", "value": "会員"}
    return {
        "everyone (no condition)": {},
        "one tag": {"tag_ids": [tag_base + 3]},
        "two tags, all": {"tag_ids": [tag_base + 3, tag_base + 10], "tag_match": "all"},
        "field equality (choice)": {"fields": [plan]},
        "attribute equality (1 in 6)": {"attributes": {"age_band": "30代"}},
        "attribute equality (1 in 50)": {"attributes": {"rank": "gold"}},
        "follow dates, one quarter": {"followed_from": "2025-01-01", "followed_to": "2025-03-31"},
        "combined: tag + attribute + dates + field": {
            "tag_ids": [tag_base + 7],
            "attributes": {"interest": "美容"},
            "followed_from": "2024-06-01",
            "fields": [plan],
        },
    }


def _at(seconds_expr: str) -> str:
    return f"(TIMESTAMP '{START:%Y-%m-%d %H:%M:%S}' + ({seconds_expr}) * INTERVAL '1 second')"


def _timed(label: str, connection, sql: str, **params) -> None:
    started = time.perf_counter()
    connection.execute(sa.text(sql), params)
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)


@contextmanager
def _indexes_dropped(connection, table_names: list[str]):
    from saas.extensions import db

    indexes = [index for name in table_names for index in db.metadata.tables[name].indexes if not index.unique]
    for index in indexes:
        index.drop(connection, checkfirst=True)
    yield
    started = time.perf_counter()
    for index in indexes:
        index.create(connection)
    for name, definition in OLD_INDEXES.items():
        connection.execute(sa.text(f"CREATE INDEX {name} ON {definition}"))
    print(f"  indexes built: {time.perf_counter() - started:.1f} s", flush=True)


def _clinics(app, other_clinics: int) -> tuple[int, int]:
    """Creates the clinics, each with 30 tags and a choice field; returns (benchmark clinic, first id)."""
    from saas.extensions import db
    from saas.tenancy.models import Clinic, Organization

    with app.app_context():
        organization = Organization(slug="bench-org", name="ベンチマーク医療法人")
        db.session.add(organization)
        db.session.flush()
        db.session.add_all(
            Clinic(slug=f"seg-{n}", name=f"ベンチ医院{n}", organization_id=organization.id)
            for n in range(other_clinics + 1)
        )
        db.session.commit()
        first = db.session.scalar(sa.select(sa.func.min(Clinic.id)))
        return db.session.scalar(sa.select(Clinic.id).where(Clinic.slug == "seg-0")), first


def _load(connection, clinic_id: int, first_clinic: int, args) -> None:
    total, others = args.total_friends, args.other_clinics
    stride = max(total // args.friends, 1)
    clinic_of = (
        f"CASE WHEN n % {stride} = 0 AND n / {stride} <= {args.friends} THEN {clinic_id}"
        f" ELSE {first_clinic} + (n % {others}) + CASE WHEN {first_clinic} + (n % {others}) >= {clinic_id} THEN 1 ELSE 0 END END"
    )
    _timed(
        f"{total:,} friends",
        connection,
        "INSERT INTO friend (clinic_id, line_user_id, display_name, status, followed_at, last_message_at,"
        " inflow_source_id, consent_marketing, consent_booking, attributes, created_at, updated_at) "
        f"SELECT {clinic_of}, 'U' || n, '患者' || n, CASE WHEN abs(hashint8(n)) % 10 = 0 THEN 'blocked' ELSE 'following' END,"
        f" {_at(f'(n * 7919) % {SPAN_SECONDS}')}, CASE WHEN n % 2 = 0 THEN {_at(f'(n * 104729) % {SPAN_SECONDS}')} END,"
        " abs(hashint8(n + 1)) % 20, abs(hashint8(n + 2)) % 7 <> 0, TRUE,"
        " jsonb_build_object('age_band', (ARRAY['10代','20代','30代','40代','50代','60代以上'])[1 + abs(hashint8(n + 3)) % 6],"
        " 'interest', (ARRAY['子育て','美容','健康診断','禁煙','ダイエット'])[1 + abs(hashint8(n + 4)) % 5],"
        " 'rank', CASE WHEN abs(hashint8(n + 5)) % 50 = 0 THEN 'gold' ELSE 'regular' END),"
        f" CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM generate_series(1::bigint, {total}) AS s(n)",
    )
    _attribute_rows(connection)
    _timed(
        "tags",
        connection,
        "INSERT INTO tag (clinic_id, name, color, created_at, updated_at) SELECT c.id, 'タグ' || k, 'green',"
        f" CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM clinic c CROSS JOIN generate_series(0, {TAGS - 1}) AS k"
        " ORDER BY c.id, k",
    )
    _timed(
        "choice fields",
        connection,
        "INSERT INTO friend_field (clinic_id, key, label, kind, choices, position, created_at, updated_at)"
        f" SELECT id, 'plan', 'プラン', 'choice', '{_json_list(PLANS)}', 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP"
        " FROM clinic ORDER BY id",
    )
    tag_base = connection.scalar(sa.text("SELECT min(id) FROM tag"))
    field_base = connection.scalar(sa.text("SELECT min(id) FROM friend_field"))
    for label, expression in (("a", "abs(hashint8(f.id)) % 30"), ("b", "abs(hashint8(f.id + 1)) % 30")):
        _timed(
            f"friend tags {label}",
            connection,
            "INSERT INTO friend_tag (clinic_id, friend_id, tag_id, created_at) SELECT f.clinic_id, f.id,"
            f" {tag_base} + (f.clinic_id - {first_clinic}) * {TAGS} + {expression}, CURRENT_TIMESTAMP FROM friend f"
            + (" WHERE abs(hashint8(f.id + 1)) % 30 <> abs(hashint8(f.id)) % 30" if label == "b" else ""),
        )
    plans = "ARRAY[" + ",".join(f"'{p}'" for p in PLANS) + "]"
    _timed(
        "field values",
        connection,
        "INSERT INTO friend_field_value (clinic_id, friend_id, field_id, text) SELECT f.clinic_id, f.id,"
        f" {field_base} + f.clinic_id - {first_clinic}, ({plans})[1 + abs(hashint8(f.id + 2)) % 4] FROM friend f WHERE abs(hashint8(f.id + 3)) % 2 = 0",
    )


def _attribute_rows(connection) -> None:
    """The friends' typed attribute rows (their triggers do not fire in replica mode), keyed after the load."""
    from saas.friends.attribute_rows import BACKFILL

    connection.execute(sa.text("ALTER TABLE friend_attribute DROP CONSTRAINT pk_friend_attribute"))
    _timed("friend attribute rows", connection, BACKFILL["postgresql"])
    _timed(
        "friend attribute key",
        connection,
        "ALTER TABLE friend_attribute ADD CONSTRAINT pk_friend_attribute PRIMARY KEY (clinic_id, key, value, friend_id)",
    )


def _json_list(values) -> str:
    import json

    return json.dumps(list(values), ensure_ascii=False)


def generate(app, args) -> int:
    from saas.extensions import db

    clinic_id, first_clinic = _clinics(app, args.other_clinics)
    with app.app_context(), db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text("SET synchronous_commit = off"))
        connection.execute(sa.text("SET maintenance_work_mem = '512MB'"))
        # Generated rows are consistent by construction: skip the per-row foreign-key triggers.
        connection.execute(sa.text("SET session_replication_role = replica"))
        with _indexes_dropped(connection, ["friend", "friend_tag", "friend_field_value", "friend_attribute"]):
            _load(connection, clinic_id, first_clinic, args)
        started = time.perf_counter()
        connection.execute(sa.text("VACUUM ANALYZE"))
        print(f"  vacuum analyze: {time.perf_counter() - started:.1f} s", flush=True)
    return clinic_id


class _Capture:
    """The statements a call runs, with their parameters (to EXPLAIN them afterwards)."""

    def __init__(self, engine):
        self.statements: list[tuple[str, object]] = []
        sa.event.listen(engine, "before_cursor_execute", self._record)

    def _record(self, connection, cursor, statement, parameters, context, executemany):
        self.statements.append((statement, parameters))


def _server_ms(connection, statement: str, parameters) -> tuple[float, str]:
    rows = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters).scalars().all()
    plan = "\n".join(rows)
    found = re.search(r"Execution Time: ([\d.]+) ms", plan)
    return (float(found.group(1)) if found else 0.0), plan


def _drop(connection, names) -> None:
    for name in names:
        connection.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")


def _old_attribute_filter(key: str, value: str):
    """The attribute condition as it was on the ``json`` column: the text of one key, unindexable."""
    from saas.friends.models import Friend

    return sa.cast(Friend.attributes, sa.JSON)[key].as_string() == value


def _measure(app, clinic_id: int, named: dict[str, dict], samples: int, *, old: bool) -> dict:
    """count_audience per segment inside one transaction with the other index set dropped (rolled back)."""
    from saas.delivery import audience
    from saas.extensions import db
    from saas.tenancy.scoping import tenant_scope

    results = {}
    with app.app_context(), tenant_scope(clinic_id):
        connection = db.session.connection()
        _drop(connection, NEW_INDEXES if old else OLD_INDEXES)
        original = audience.attribute_filter
        if old:
            audience.attribute_filter = _old_attribute_filter
        try:
            capture = _Capture(db.engine)
            for name, segment in named.items():
                audience.count_audience("segment", segment)  # warm-up
                wall, cpu = [], []
                for _ in range(samples):
                    capture.statements.clear()
                    started, started_cpu = time.perf_counter(), time.process_time()
                    counts = audience.count_audience("segment", segment)
                    wall.append((time.perf_counter() - started) * 1000)
                    cpu.append((time.process_time() - started_cpu) * 1000)
                statement, parameters = next(s for s in reversed(capture.statements) if s[0].startswith("SELECT"))
                server = [_server_ms(connection, statement, parameters)[0] for _ in range(min(samples, 5))]
                plan = _server_ms(connection, statement, parameters)[1]
                results[name] = {
                    **support.summary(wall),
                    "cpu_ms": sum(cpu) / len(cpu),
                    "server_p50_ms": support.percentile(server, 0.5),
                    "matched": counts.matched,
                    "eligible": counts.eligible,
                    "plan": plan,
                }
                row = results[name]
                print(
                    f"  {name:<44}{row['p50_ms']:>8.1f}{row['p99_ms']:>8.1f}{row['server_p50_ms']:>9.1f}"
                    f"{row['cpu_ms']:>7.1f}{counts.matched:>9,}",
                    flush=True,
                )
            sa.event.remove(db.engine, "before_cursor_execute", capture._record)
        finally:
            audience.attribute_filter = original
            db.session.rollback()
    return results


def _scale_key(args) -> str:
    return f"{args.friends}/{args.total_friends}/{args.other_clinics}"


def _segment_ids(app, clinic_id: int) -> tuple[int, int]:
    from saas.extensions import db
    from saas.tenancy.scoping import platform_scope

    with app.app_context(), platform_scope("benchmark setup: the tag and field of the segments"):
        tag = db.session.scalar(sa.text("SELECT min(id) FROM tag WHERE clinic_id = :c"), {"c": clinic_id})
        field = db.session.scalar(sa.text("SELECT id FROM friend_field WHERE clinic_id = :c"), {"c": clinic_id})
        db.session.remove()
    return tag, field


def run(args) -> dict:
    from saas import create_app
    from saas.extensions import db

    app = create_app({"TESTING": True, "SERVER_NAME": None})
    clinic_id = support.already_built(app, _scale_key(args))
    if clinic_id is None:
        with app.app_context():
            db.drop_all()
            db.create_all()
        started = time.perf_counter()
        clinic_id = generate(app, args)
        support.remember_built(app, clinic_id, _scale_key(args))
        print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)
    named = segments(*_segment_ids(app, clinic_id))
    header = f"{'p50 ms':>8}{'p99 ms':>8}{'server':>9}{'cpu':>7}{'matched':>9}"
    print(f"\n{'segment count (clinic-led indexes, attribute rows)':<46}{header}")
    new = _measure(app, clinic_id, named, args.samples, old=False)
    print(f"\n{'baseline (old indexes, json attributes)':<46}{header}")
    old = _measure(app, clinic_id, named, args.samples, old=True)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return {"segments": new, "baseline": old}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--friends", type=int, default=100_000, help="friends of the benchmark clinic")
    parser.add_argument("--total-friends", type=int, default=10_000_000, help="friends in the database")
    parser.add_argument("--other-clinics", type=int, default=1_000)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--database", default=DATABASE, help="the scratch database's name")
    parser.add_argument("--keep", action="store_true", help="keep the generated data for the next run")
    parser.add_argument("--plans", action="store_true", help="print the query plans")
    parser.add_argument("--json", default="", help="write the figures here")
    args = parser.parse_args(argv)
    if not support.production():
        print("segment_counts measures Postgres (its indexes): set DATABASE_URL and REDIS_URL; skipped")
        return {}
    os.environ.setdefault("TSUNAGU_INSTANCE_DIR", tempfile.mkdtemp(prefix="tsunagu-segments-bench-"))
    print(
        f"segment counts, {support.configuration()}, load average {os.getloadavg()[0]:.1f}: a {args.friends:,}-friend"
        f" clinic among {args.other_clinics:,} others, {args.total_friends:,} friends in all"
    )
    with support.scratch_postgres(args.database, keep=args.keep) as url:
        os.environ["DATABASE_URL"] = url
        figures = run(args)
    if args.plans:
        for label, rows in figures.items():
            for name, row in rows.items():
                print(f"\n--- {label}: {name}\n{row['plan']}")
    result = {
        "configuration": support.configuration(),
        "machine": support.machine(),
        "scale": {"friends": args.friends, "total_friends": args.total_friends, "other_clinics": args.other_clinics},
        **figures,
    }
    support.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
