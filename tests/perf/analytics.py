"""Analytics at scale: the pages (reading roll-ups only), the nightly roll-up and the backfill.

Run::

    DATABASE_URL=postgresql://... REDIS_URL=redis://... python -m tests.perf.analytics
    python -m tests.perf.analytics --clinics 100 --friends 1000000 --receipts 5000000

Data, generated set-based (``INSERT ... SELECT`` over a number series, secondary indexes dropped
during the load and rebuilt after, then ``ANALYZE``): ``--clinics`` clinics in organizations of
ten under one agency, ``--friends`` friends spread over them (followed over the last 400 days,
8% blocked since), ``--receipts`` message receipts of 20 deliveries per clinic, one booking per
100 friends, 20 inflow sources per clinic. On Postgres a scratch database
``tsunagu_bench_analytics`` is created on DATABASE_URL's server and dropped afterwards (``--keep``
leaves it, and a later run at the same scale measures the pages again without rebuilding); without
DATABASE_URL a temporary SQLite file (smaller defaults).

Measured: the backfill of ``--days`` days (``flask analytics backfill``), the nightly catch-up
(three days of every clinic), the attribution of one booking, and each analytics page through
Flask's test client as a signed-in agency owner (p50/p99 of ``--samples`` requests, the median
process CPU time of a request and its SQL statements: the fair figures on a shared machine). No timed
assertions: the figures are printed, with the machine's load.
"""

from __future__ import annotations

import argparse
import itertools
import os
import signal
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from datetime import datetime

import sqlalchemy as sa

from saas.common import utcnow
from tests.perf import support

DAYS_OF_HISTORY = 400
DELIVERIES_PER_CLINIC = 20
CLINICS_PER_ORGANIZATION = 10


def _series(dialect: str, count: int) -> str:
    if dialect == "postgresql":
        return f"generate_series(1::bigint, {count}) AS s(n)"
    return f"(WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < {count}) SELECT n FROM r) AS s"


def _ago(dialect: str, seconds_expr: str, now: datetime) -> str:
    if dialect == "postgresql":
        return f"(TIMESTAMP '{now:%Y-%m-%d %H:%M:%S}' - ({seconds_expr}) * INTERVAL '1 second')"
    return f"datetime('{now:%Y-%m-%d %H:%M:%S}', '-' || CAST({seconds_expr} AS INTEGER) || ' seconds')"


def _tenants(clinics: int) -> tuple[str, list[int]]:
    from saas.extensions import db
    from saas.tenancy.models import Agency, Clinic, Organization

    agency = Agency(slug="bench-agency", name="ベンチ代理店")
    db.session.add(agency)
    db.session.flush()
    ids = []
    for n in range(clinics):
        if n % CLINICS_PER_ORGANIZATION == 0:
            organization = Organization(slug=f"bench-org-{n}", name=f"ベンチ法人{n}", agency_id=agency.id)
            db.session.add(organization)
            db.session.flush()
        clinic = Clinic(slug=f"bench-{n}", name=f"ベンチ医院{n}", organization_id=organization.id)
        db.session.add(clinic)
        db.session.flush()
        ids.append(clinic.id)
    db.session.commit()
    return agency.slug, ids


def _timed(label: str, connection, sql: str) -> None:
    started = time.perf_counter()
    connection.execute(sa.text(sql))
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)


def generate(args, now: datetime) -> tuple[str, list[int]]:
    """Tenants, sources, friends, deliveries, receipts and bookings; returns the agency slug and clinic ids."""
    from saas.extensions import db

    agency_slug, ids = _tenants(args.clinics)
    first, count = ids[0], len(ids)
    dialect = db.engine.dialect.name
    clinic_of = f"({first} + n % {count})"
    span = DAYS_OF_HISTORY * 86400
    with db.engine.begin() as connection:
        indexes = [
            index
            for name in ("friend", "message_receipt", "booking")
            for index in db.metadata.tables[name].indexes
            if not index.unique
        ]
        for index in indexes:
            index.drop(connection, checkfirst=True)
        _timed(
            "inflow sources",
            connection,
            "INSERT INTO inflow_source (clinic_id, name, token, tag_ids, poster_message, active, created_at, updated_at) "
            f"SELECT {first} + (n - 1) / 20, '経路' || n, 'tok' || n, '[]', '', TRUE, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP "
            f"FROM {_series(dialect, count * 20)}",
        )
        followed = _ago(dialect, f"(n * 7919) % {span}", now)
        blocked = _ago(dialect, f"((n * 7919) % {span}) * 0.5", now)
        _timed(
            f"{args.friends:,} friends",
            connection,
            "INSERT INTO friend (clinic_id, line_user_id, display_name, status, followed_at, blocked_at,"
            " inflow_source_id, consent_marketing, consent_booking, attributes, created_at, updated_at) "
            f"SELECT {clinic_of}, 'U' || n, '', CASE WHEN n % 12 = 0 THEN 'blocked' ELSE 'following' END,"
            f" {followed}, CASE WHEN n % 12 = 0 THEN {blocked} END,"
            f" (SELECT min(id) FROM inflow_source) + (n % {count}) * 20 + n % 7, TRUE, TRUE, '{{}}',"
            f" CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM {_series(dialect, args.friends)}",
        )
        _timed(
            "deliveries",
            connection,
            "INSERT INTO delivery (clinic_id, kind, title, messages, segment, allow_trim, status, targeted, planned,"
            " sent, failed, skipped, stop_reason, created_by_email, started_at, finished_at, created_at, updated_at) "
            f"SELECT {first} + (n - 1) / {DELIVERIES_PER_CLINIC}, 'broadcast', 'お知らせ' || n, '[]', '{{}}', FALSE,"
            f" 'done', 0, 0, 0, n % 3, '{{}}', '', '', {_ago(dialect, f'(n % {DELIVERIES_PER_CLINIC}) * 86400 * 4', now)},"
            f" NULL, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM {_series(dialect, count * DELIVERIES_PER_CLINIC)}",
        )
        # receipt n: friend (n % friends) + 1 gets delivery (n / friends) of its clinic's twenty
        friend = f"(1 + n % {args.friends})"
        _timed(
            f"{args.receipts:,} receipts",
            connection,
            "INSERT INTO message_receipt (clinic_id, friend_id, source, delivery_id, chunk_id, preview, sent_at) "
            f"SELECT {first} + {friend} % {count}, {friend}, 'broadcast',"
            f" (SELECT min(id) FROM delivery) + ({friend} % {count}) * {DELIVERIES_PER_CLINIC}"
            f" + (n / {args.friends}) % {DELIVERIES_PER_CLINIC}, NULL, '',"
            f" {_ago(dialect, f'((n / {args.friends}) % {DELIVERIES_PER_CLINIC}) * 86400 * 4', now)}"
            f" FROM {_series(dialect, args.receipts)}",
        )
        _timed(
            "slots",
            connection,
            "INSERT INTO slot (clinic_id, starts_at, ends_at, capacity, booked_count) "
            f"SELECT {first} + n - 1, '2030-01-01 10:00:00', '2030-01-01 10:30:00', 100000, 0 FROM {_series(dialect, count)}",
        )
        bookings = args.friends // 100
        _timed(
            f"{bookings:,} bookings",
            connection,
            "INSERT INTO booking (clinic_id, slot_id, starts_at, ends_at, friend_id, line_user_id, patient_name, status,"
            " cancelled_by, confirmation_retry_key, reminder_state, reminder_retry_key, closure_notice_retry_key,"
            " created_at, updated_at) "
            f"SELECT {first} + (n * 100) % {count}, (SELECT min(id) FROM slot) + (n * 100) % {count},"
            " '2030-01-01 10:00:00', '2030-01-01 10:30:00', n * 100, 'U' || (n * 100), '', 'confirmed', '',"
            f" 'k' || n, 'pending', 'r' || n, 'c' || n, {_ago(dialect, f'(n * 104729) % {span}', now)}, CURRENT_TIMESTAMP"
            f" FROM {_series(dialect, bookings)}",
        )
        started = time.perf_counter()
        for index in indexes:
            index.create(connection)
        print(f"  indexes rebuilt: {time.perf_counter() - started:.1f} s", flush=True)
        connection.execute(sa.text("ANALYZE"))
    return agency_slug, ids


def _seconds(work) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


def _measure_pages(app, agency_slug: str, ids: list[int], samples: int) -> dict:
    from saas.extensions import db
    from saas.tenancy.models import Agency, Clinic, Organization
    from tests.conftest import IsolatedClient
    from tests.factories import gen_user
    from tests.helpers import login

    with app.app_context():
        agency = db.session.scalar(sa.select(Agency).where(Agency.slug == agency_slug))
        user = gen_user("owner", agency=agency)
        clinic = db.session.get(Clinic, ids[0])
        organization = db.session.get(Organization, clinic.organization_id)
        slug, org_slug = clinic.slug, organization.slug
        app.test_client_class = IsolatedClient
        client = app.test_client()
        login(client, user)
        db.session.remove()
    pages = {
        "clinic, 30 days": f"/c/{slug}/analytics/",
        "clinic, 365 days": f"/c/{slug}/analytics/?days=365",
        "clinic CSV (follows, 365 days)": f"/c/{slug}/analytics/follows.csv?days=365",
        f"organization ({CLINICS_PER_ORGANIZATION} branches)": f"/analytics/organizations/{org_slug}/",
        f"agency ({len(ids)} clinics)": f"/analytics/agencies/{agency_slug}/",
        f"agency health CSV ({len(ids)} clinics)": f"/analytics/agencies/{agency_slug}/health.csv",
    }
    figures = {}
    with app.app_context():
        engine = db.engine
    queries = [0]

    def count(*_args):
        queries[0] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        for label, url in pages.items():
            response = client.get(url)  # warm-up
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code}")
            times, cpu = [], []
            queries[0] = 0
            for _ in range(samples):
                started, started_cpu = time.perf_counter(), time.process_time()
                client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.process_time() - started_cpu) * 1000)
            figures[label] = support.summary(times) | {
                "cpu_p50_ms": statistics.median(cpu),
                "queries": queries[0] / samples,
            }
            f = figures[label]
            print(
                f"  {label:<42}{f['p50_ms']:>9.1f}{f['p99_ms']:>9.1f}{f['cpu_p50_ms']:>9.1f}{f['queries']:>9.0f}",
                flush=True,
            )
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)
    return figures


def _measure_attribution(app, ids: list[int], samples: int) -> dict:
    from saas.analytics import attribution
    from saas.booking.models import Booking
    from saas.extensions import db
    from saas.tenancy.scoping import platform_scope, tenant_scope

    times = []
    with app.app_context():
        with platform_scope("benchmark: bookings to attribute"):
            statement = sa.select(Booking.clinic_id, Booking.id).order_by(Booking.id.desc()).limit(samples)
            rows = db.session.execute(statement).all()
        for clinic_id, booking_id in rows:
            with tenant_scope(clinic_id):
                started = time.perf_counter()
                attribution.attribute(clinic_id, "booking", booking_id)
                db.session.commit()
                times.append((time.perf_counter() - started) * 1000)
    return support.summary(times)


def _scale_key(args) -> str:
    return f"{args.clinics}/{args.friends}/{args.receipts}/{args.days}"


def _reuse(app) -> tuple[str, list[int]]:
    """The agency and clinics of a kept database (see ``--keep``)."""
    from saas.extensions import db
    from saas.tenancy.scoping import platform_scope
    from tests import factories

    with app.app_context(), platform_scope("benchmark: the kept database's clinics"):
        ids = list(db.session.scalars(sa.text("SELECT id FROM clinic ORDER BY id")))
        slug = db.session.scalar(sa.text("SELECT slug FROM agency ORDER BY id LIMIT 1"))
        users = db.session.scalar(sa.text('SELECT count(*) FROM "user"'))
    factories._seq = itertools.count(users + 1)  # each run signs in a new user{n}@example.jp
    return slug, ids


def run(args) -> dict:
    from saas import create_app

    app = create_app({"TESTING": True, "SERVER_NAME": None})
    if args.keep and support.already_built(app, _scale_key(args)):
        print("  reusing the kept database (pages only)", flush=True)
        agency_slug, ids = _reuse(app)
        print(f"\n  {'page':<42}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms':>9}{'queries':>9}")
        pages = _measure_pages(app, agency_slug, ids, args.samples)
        with app.app_context():
            _dispose()
        return {"pages": pages}
    figures = _build_and_measure(app, args)
    if args.keep:
        with app.app_context():
            first = _first_clinic()
        support.remember_built(app, first, _scale_key(args))
    return figures


def _dispose() -> None:
    from saas.extensions import db

    db.session.remove()
    db.engine.dispose()


def _first_clinic() -> int:
    from saas.extensions import db

    return db.session.scalar(sa.text("SELECT min(id) FROM clinic"))


def _build_and_measure(app, args) -> dict:
    from saas.analytics import jobs
    from saas.extensions import db
    from saas.tenancy.scoping import platform_scope

    now = utcnow().replace(microsecond=0)
    with app.app_context():
        db.drop_all()
        db.create_all()
        started = time.perf_counter()
        with platform_scope("benchmark: generating every clinic's data"):
            agency_slug, ids = generate(args, now)
        print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)
        backfill = _seconds(lambda: jobs.catch_up(args.days))
        nightly = [_seconds(lambda: jobs.catch_up(jobs.CATCH_UP_DAYS)) for _ in range(3)]
    print(f"  backfill of {args.days} days x {len(ids)} clinics: {backfill:.1f} s", flush=True)
    print(f"  nightly catch-up (3 days x {len(ids)} clinics): median {statistics.median(nightly):.2f} s", flush=True)
    attribution = _measure_attribution(app, ids, args.samples)
    print(f"  attribution of one booking: p50 {attribution['p50_ms']:.1f} ms, p99 {attribution['p99_ms']:.1f} ms")
    print(f"\n  {'page':<42}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms':>9}{'queries':>9}")
    pages = _measure_pages(app, agency_slug, ids, args.samples)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return {
        "backfill_s": backfill,
        "nightly_s": statistics.median(nightly),
        "attribution": attribution,
        "pages": pages,
    }


def _extrapolation(args, figures: dict) -> str:
    factor_clinics = 1000 / args.clinics
    factor_friends = 10_000_000 / args.friends
    return (
        "Extrapolation to 1,000 clinics / 10,000,000 friends / 100,000,000 receipts: the clinic page reads at most "
        "`days` roll-up rows of one clinic (independent of friends and receipts), so its figure stands; the "
        f"agency page reads clinics x days rows: about x{factor_clinics:.0f} its SQL share; the nightly catch-up "
        f"counts each clinic's friends three times and scans three days of events: about x{factor_friends:.0f} "
        f"(~{figures['nightly_s'] * factor_friends:.0f} s); attribution is one index probe of a friend's receipts "
        "and stays flat."
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    postgres = support.production() or bool(os.environ.get("DATABASE_URL"))
    parser.add_argument("--clinics", type=int, default=100 if postgres else 20)
    parser.add_argument("--friends", type=int, default=1_000_000 if postgres else 100_000)
    parser.add_argument("--receipts", type=int, default=5_000_000 if postgres else 300_000)
    parser.add_argument("--days", type=int, default=30, help="days of history the backfill builds")
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--json", default="", help="write the figures here")
    parser.add_argument(
        "--database", default="tsunagu_bench_analytics", help="scratch Postgres database (dropped after)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database; a rerun at its scale reuses it")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a timeout still drops the scratch database
    tmp = tempfile.mkdtemp(prefix="tsunagu-analytics-bench-")
    os.environ.setdefault("TSUNAGU_INSTANCE_DIR", tmp)
    print(
        f"analytics at scale, {support.configuration()}: {args.clinics:,} clinics, {args.friends:,} friends, "
        f"{args.receipts:,} receipts; machine {support.machine()}",
        flush=True,
    )
    database = (
        support.scratch_postgres(args.database, keep=args.keep)
        if postgres
        else nullcontext(f"sqlite:///{tmp}/analytics.sqlite3")
    )
    from saas.queues import stop_embedded_servers

    try:
        with database as url:
            os.environ["DATABASE_URL"] = url
            figures = run(args)
    finally:
        stop_embedded_servers()
    if "nightly_s" in figures:
        print("\n" + _extrapolation(args, figures))
    result = {"configuration": support.configuration(), "machine": support.machine(), "scale": vars(args), **figures}
    support.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
