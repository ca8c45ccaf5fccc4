"""Benchmark: the step delivery tick's scan with 1,000,000 friends in scenarios and 10,000 due.

Run::

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres REDIS_URL=redis://127.0.0.1:6379/1 \\
        python -m tests.perf.step_scan [--enrolments 1000000] [--due 10000] [--clinics 100] [--keep]

Data (set-based ``INSERT ... SELECT`` over a number series, then ``ANALYZE``): ``--clinics``
clinics, one active scenario with three steps each; ``--enrolments`` friends, each in a scenario
(half of them in the first, large clinic). ``--due`` of them are due now, spread over the clinics;
the others are due within the next 30 days, and one in ten has finished (``next_due_at`` NULL).
On Postgres it builds a scratch database (``--database``, default ``tsunagu_bench_steps``) on
DATABASE_URL's server; on SQLite a temporary file.

Measured (``--samples`` runs, p50/p99): the tick's scan (``saas.steps.runner.due_work``: one
statement over the ``next_due_at`` index giving every clinic's due enrolments by step, which the
tick hands to one job per clinic), and beside it the same rows read by each clinic's own scan
(``runner._due_groups`` over the (clinic, next_due_at) index: one statement per clinic, what a
clinic job does when run by hand).
Baselines on the same data: the same due rows found by scanning every enrolment (the index
switched off: what a tick costs without ``next_due_at`` indexed), and loading every running
enrolment with its step to decide in Python (a tick that recomputes each friend's due time).
Target: the scan under 1 s on Postgres; it should grow with the due rows, not the enrolments.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from contextlib import nullcontext
from datetime import datetime, timedelta

import sqlalchemy as sa

from tests.perf import support

NOW = datetime(2026, 12, 1, 1, 0)  # 10:00 in Japan


def _series(dialect: str, count: int) -> str:
    if dialect == "postgresql":
        return f"generate_series(1, {count}) AS s(n)"
    return f"(WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < {count}) SELECT n FROM r) AS s"


def _minutes_after(dialect: str, minutes_expr: str) -> str:
    if dialect == "postgresql":
        return f"(TIMESTAMP '{NOW:%Y-%m-%d %H:%M:%S}' + ({minutes_expr}) * INTERVAL '1 minute')"
    return f"datetime('{NOW:%Y-%m-%d %H:%M:%S}', CAST({minutes_expr} AS INTEGER) || ' minutes')"


def _timed(label: str, connection, sql: str, **params) -> None:
    started = time.perf_counter()
    connection.execute(sa.text(sql), params)
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)


def _clinics_and_scenarios(app, clinics: int) -> list[tuple[int, int, int]]:
    """(clinic id, scenario id, first step id) per clinic."""
    from saas.extensions import db
    from saas.steps.models import ScenarioStep, StepScenario
    from saas.tenancy.models import Clinic, Organization
    from saas.tenancy.scoping import platform_scope

    made = []
    with app.app_context(), platform_scope("benchmark setup"):
        organization = Organization(slug="bench-steps", name="ベンチマーク医療法人")
        db.session.add(organization)
        db.session.flush()
        for n in range(clinics):
            clinic = Clinic(slug=f"steps-{n}", name=f"ステップ医院{n}", organization_id=organization.id)
            db.session.add(clinic)
            db.session.flush()
            scenario = StepScenario(clinic_id=clinic.id, key="follow", name="初診後フォロー", status="active")
            db.session.add(scenario)
            db.session.flush()
            steps = [ScenarioStep(clinic_id=clinic.id, scenario_id=scenario.id, position=p, delay_value=p + 1,
                                  messages=[{"type": "text", "text": f"ステップ{p + 1}"}]) for p in range(3)]  # fmt: skip
            db.session.add_all(steps)
            db.session.flush()
            made.append((clinic.id, scenario.id, steps[0].id))
        db.session.commit()
    return made


def _enrolment_count(args) -> int:
    big = args.enrolments // 2
    return big + (args.enrolments - big) // max(args.clinics - 1, 1) * (args.clinics - 1)


def generate(app, args) -> None:
    """Friends, their enrolments (``--due`` due now), set-based per clinic."""
    from saas.extensions import db

    made = _clinics_and_scenarios(app, args.clinics)
    big = args.enrolments // 2
    rest = (args.enrolments - big) // max(args.clinics - 1, 1)
    due_every = max(args.enrolments // args.due, 1)
    with app.app_context(), db.engine.begin() as connection:
        dialect = connection.dialect.name
        for index, (clinic_id, scenario_id, step_id) in enumerate(made):
            count = big if index == 0 else rest
            connection.execute(
                sa.text(
                    "INSERT INTO friend (clinic_id, line_user_id, display_name, status, followed_at, consent_marketing,"
                    " consent_booking, attributes, created_at, updated_at) "
                    f"SELECT :c, 'U' || :c || 'x' || n, '患者' || n, 'following', CURRENT_TIMESTAMP, TRUE, TRUE, '{{}}',"
                    f" CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM {_series(dialect, count)}"
                ),
                {"c": clinic_id},
            )
            first = connection.scalar(sa.text("SELECT min(id) FROM friend WHERE clinic_id = :c"), {"c": clinic_id})
            minutes = f"(CASE WHEN (n + {index}) % {due_every} = 0 THEN -(n % 50) ELSE 1 + n % {30 * 24 * 60} END)"
            due = f"CASE WHEN n % 10 = 9 THEN NULL ELSE {_minutes_after(dialect, minutes)} END"
            started = _minutes_after(dialect, f"{minutes} - 1440")  # the first step waits a day
            connection.execute(
                sa.text(
                    "INSERT INTO step_enrolment (clinic_id, scenario_id, friend_id, status, start_reason, current_step_id,"
                    " next_due_at, started_at, stop_reason, created_at, updated_at) "
                    f"SELECT :c, :s, :f + n - 1, CASE WHEN n % 10 = 9 THEN 'completed' ELSE 'active' END, 'follow', :step,"
                    f" {due}, {started}, '', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM {_series(dialect, count)}"
                ),
                {"c": clinic_id, "s": scenario_id, "f": first, "step": step_id},
            )
            if index % 20 == 0:
                print(f"  clinic {index + 1}/{len(made)}: {count:,} enrolments", flush=True)
        connection.execute(sa.text("ANALYZE" if dialect == "postgresql" else "ANALYZE"))


def _tick_scan(app) -> tuple[float, int, int]:
    """What the cron tick reads: every clinic's due enrolments in one statement. (ms, clinics, rows)."""
    from saas.extensions import db
    from saas.steps import jobs, runner
    from saas.tenancy.scoping import platform_scope

    with app.app_context():
        started = time.perf_counter()
        with platform_scope("benchmark tick"):
            work = runner.due_work(NOW)
            clinics = set(work) | jobs.clinics_in_flight()
        elapsed = (time.perf_counter() - started) * 1000
        db.session.rollback()
    return elapsed, len(clinics), sum(len(ids) for groups in work.values() for ids in groups.values())


def _clinic_scans(app) -> tuple[float, int, int]:
    """The per-clinic scan a clinic job does when run without the tick's groups, for every clinic
    with work, one after the other (a statement each; the workers run them in parallel)."""
    from saas.extensions import db
    from saas.steps import runner
    from saas.tenancy.scoping import platform_scope, tenant_scope

    with app.app_context():
        with platform_scope("benchmark"):
            clinic_ids = list(runner.due_work(NOW))
        started, rows = time.perf_counter(), 0
        for clinic_id in clinic_ids:
            with tenant_scope(clinic_id):
                rows += sum(len(ids) for ids in runner._due_groups(clinic_id, NOW).values())
        elapsed = (time.perf_counter() - started) * 1000
        db.session.rollback()
    return elapsed, len(clinic_ids), rows


SEQ_SCAN = (
    "SELECT clinic_id, scenario_id, current_step_id, id FROM step_enrolment"
    " WHERE status = 'active' AND next_due_at <= :now ORDER BY next_due_at"
)


def _baseline_seq_scan(app) -> tuple[float, int]:
    from saas.extensions import db

    with app.app_context(), db.engine.connect() as connection:
        statement = SEQ_SCAN
        if connection.dialect.name == "postgresql":
            for setting in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
                connection.execute(sa.text(f"SET {setting} = off"))
        else:
            statement = SEQ_SCAN.replace("FROM step_enrolment", "FROM step_enrolment NOT INDEXED")
        started = time.perf_counter()
        rows = connection.execute(sa.text(statement), {"now": NOW}).all()
        return (time.perf_counter() - started) * 1000, len(rows)


def _baseline_all_running(app) -> tuple[float, int]:
    from saas.extensions import db
    from saas.steps.models import ScenarioStep, StepEnrolment

    every_running = (
        sa.select(
            StepEnrolment.started_at, StepEnrolment.last_step_at, ScenarioStep.delay_value, ScenarioStep.delay_unit
        )
        .join(ScenarioStep, ScenarioStep.id == StepEnrolment.current_step_id)
        .where(StepEnrolment.status == "active")
    )

    units = {"minutes": timedelta(minutes=1), "hours": timedelta(hours=1), "days": timedelta(days=1)}
    with app.app_context(), db.engine.connect() as connection:
        started = time.perf_counter()
        due = 0
        for started_at, last, value, unit in connection.execute(every_running):
            due += (last or started_at) + units[unit] * value <= NOW
        return (time.perf_counter() - started) * 1000, due


def _sampled(function, app, samples: int) -> tuple[dict, tuple]:
    timings, last = [], None
    for _ in range(samples):
        last = function(app)
        timings.append(last[0])
    return support.summary(timings), last


def run(args) -> dict:
    from saas import create_app
    from saas.extensions import db

    app = create_app({"TESTING": True, "SERVER_NAME": None})
    with app.app_context(), db.engine.connect() as connection:
        built = sa.inspect(connection).has_table("step_enrolment") and connection.scalar(
            sa.text("SELECT count(*) FROM step_enrolment")
        )
    if built != _enrolment_count(args):
        with app.app_context():
            db.drop_all()
            db.create_all()
        started = time.perf_counter()
        generate(app, args)
        print(f"  generated in {time.perf_counter() - started:.0f} s", flush=True)
    tick, (_, clinics, rows) = _sampled(_tick_scan, app, args.samples)
    per_clinic, (_, _, per_clinic_rows) = _sampled(_clinic_scans, app, max(3, args.samples // 5))
    seq, (_, seq_rows) = _sampled(_baseline_seq_scan, app, max(3, args.samples // 5))
    python, (_, python_rows) = _sampled(_baseline_all_running, app, 1)
    print(f"\n{'one tick, ' + format(args.enrolments, ',') + ' enrolments':<62}{'p50 ms':>9}{'p99 ms':>9}{'due':>8}")
    for label, figures, count in (
        (f"tick scan (next_due_at index), {clinics} clinics with work", tick, rows),
        ("  the same rows, each clinic scanning itself (serial)", per_clinic, per_clinic_rows),
        ("baseline: every enrolment scanned (no index)", seq, seq_rows),
        ("baseline: every running enrolment loaded, decided in Python", python, python_rows),
    ):
        print(f"{label:<62}{figures['p50_ms']:>9.1f}{figures['p99_ms']:>9.1f}{count:>8,}")
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return {
        "tick_scan": {**tick, "clinics": clinics, "due": rows},
        "clinic_scans": {**per_clinic, "due": per_clinic_rows},
        "seq_scan": {**seq, "due": seq_rows},
        "python_scan": {**python, "due": python_rows},
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--enrolments", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=10_000)
    parser.add_argument("--clinics", type=int, default=100)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--database", default="tsunagu_bench_steps", help="scratch database name (Postgres)")
    parser.add_argument("--keep", action="store_true", help="keep the generated data for the next run")
    parser.add_argument("--json", default="", help="write the figures here")
    args = parser.parse_args(argv)
    tmp = tempfile.mkdtemp(prefix="tsunagu-steps-bench-")
    os.environ.setdefault("TSUNAGU_INSTANCE_DIR", tmp)
    print(f"step delivery tick, {support.configuration()}: {args.enrolments:,} enrolments, ~{args.due:,} due, "
          f"{args.clinics} clinics")  # fmt: skip
    database = (
        support.scratch_postgres(args.database, keep=args.keep)
        if support.production()
        else nullcontext(f"sqlite:///{tmp}/steps.sqlite3")
    )
    from saas.queues import stop_embedded_servers

    try:
        with database as url:
            os.environ["DATABASE_URL"] = url
            figures = run(args)
    finally:
        stop_embedded_servers()
    result = {"configuration": support.configuration(), "machine": support.machine(), **figures,
              "scale": {"enrolments": args.enrolments, "due": args.due, "clinics": args.clinics}}  # fmt: skip
    support.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
