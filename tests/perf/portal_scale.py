"""Portal pages and segment counts at platform scale, beside the queries they replaced.

Run::

    python -m tests.perf.portal_scale                      # scale by configuration (printed)
    python -m tests.perf.portal_scale --messages 1000000 --other-clinics 100 --keep

Data (generated set-based: ``INSERT ... SELECT`` over a number series, secondary indexes dropped
during the load and rebuilt after, then ``VACUUM ANALYZE``): one clinic with ``--friends``
friends (default 100,000), ``--messages`` messages (default 10,000,000 on Postgres, 1,000,000 on
SQLite), 30 tags (two per friend), a conversation row per friend (2% waiting for staff),
``--audit`` audit events, and ``--other-clinics`` other clinics (default 1,000) with
``--other-friends`` friends and two messages each. On Postgres it builds a scratch database
``tsunagu_bench_portal`` on DATABASE_URL's server (``--keep`` leaves it for the next run, which
then skips the generation); on SQLite a temporary file.

Measured in-process through Flask's test client as a signed-in owner (every page's real code:
login, tenant scope, templates), ``--samples`` requests per page after a warm-up; p50/p99 and
the number of SQL statements per request. Baselines, run on the same data: the queries the
pages used before (badge: unread messages counted per friend over the message table; inbox
list: the message table aggregated twice; friends page 1,000 by OFFSET). Segment counts call
the composer's count (``count_audience``) for typical segments.
"""

from __future__ import annotations

import argparse
import os
import re
import tempfile
import time
from contextlib import contextmanager, nullcontext
from datetime import datetime

import sqlalchemy as sa

from tests.perf import support

START = datetime(2023, 12, 1)
SPAN_SECONDS = 3 * 365 * 24 * 3600  # three years of history
TAGS = 30
SEGMENTS = {
    "one tag": {"tag_ids": [3]},
    "two tags, all": {"tag_ids": [3, 10], "tag_match": "all"},
    "tag, not tag": {"tag_ids": [5], "exclude_tag_ids": [6]},
    "followed in a quarter": {"followed_from": "2025-01-01", "followed_to": "2025-03-31"},
    "messaged within 30 days": {"messaged_within_days": 30},
    "tag + follow dates + source": {"tag_ids": [7], "followed_from": "2024-06-01", "inflow_source_ids": [2, 3]},
}
OLD_BADGE = """
SELECT count(*) FROM friend f JOIN (
  SELECT m.friend_id, count(m.id) AS unread FROM message m
  LEFT JOIN conversation c ON c.friend_id = m.friend_id
  WHERE m.clinic_id = :c AND m.direction = 'in' AND m.id > coalesce(c.last_read_message_id, 0)
  GROUP BY m.friend_id) u ON u.friend_id = f.id
LEFT JOIN conversation c2 ON c2.friend_id = f.id
WHERE f.clinic_id = :c AND f.status <> 'erased' AND coalesce(c2.status, 'open') <> 'resolved'
"""
OLD_INBOX = """
SELECT f.id, m.id FROM friend f
JOIN (SELECT friend_id, max(id) AS last_id FROM message WHERE clinic_id = :c GROUP BY friend_id) l ON l.friend_id = f.id
JOIN message m ON m.id = l.last_id
LEFT JOIN (SELECT m2.friend_id, count(m2.id) AS unread FROM message m2
  LEFT JOIN conversation c3 ON c3.friend_id = m2.friend_id
  WHERE m2.clinic_id = :c AND m2.direction = 'in' AND m2.id > coalesce(c3.last_read_message_id, 0)
  GROUP BY m2.friend_id) u ON u.friend_id = f.id
LEFT JOIN conversation c ON c.friend_id = f.id
WHERE f.clinic_id = :c AND coalesce(c.status, 'open') <> 'resolved'
ORDER BY l.last_id DESC LIMIT 50
"""
OLD_MESSAGE_CHART = """
SELECT CAST(created_at + INTERVAL '9 hours' AS DATE) AS day, direction, count(*) FROM message
WHERE clinic_id = :c AND created_at >= CURRENT_TIMESTAMP - INTERVAL '30 days' GROUP BY 1, 2
"""  # Postgres only: the dashboard's chart before the daily roll-up
OLD_FRIENDS_OFFSET = """
SELECT id FROM friend WHERE clinic_id = :c ORDER BY followed_at DESC NULLS LAST, id DESC LIMIT 50 OFFSET 50000
"""


def _series(dialect: str, count: int) -> str:
    """SQL for a relation ``s(n)`` of 1..count."""
    if dialect == "postgresql":
        return f"generate_series(1, {count}) AS s(n)"
    return f"(WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < {count}) SELECT n FROM r) AS s"


def _at(dialect: str, seconds_expr: str) -> str:
    if dialect == "postgresql":
        return f"(TIMESTAMP '{START:%Y-%m-%d %H:%M:%S}' + ({seconds_expr}) * INTERVAL '1 second')"
    return f"datetime('{START:%Y-%m-%d %H:%M:%S}', '+' || CAST({seconds_expr} AS INTEGER) || ' seconds')"


@contextmanager
def _indexes_dropped(connection, table_names: list[str]):
    """Bulk loads are several times faster without the secondary indexes; rebuilt afterwards."""
    from saas.extensions import db

    indexes = [index for name in table_names for index in db.metadata.tables[name].indexes if not index.unique]
    for index in indexes:
        index.drop(connection, checkfirst=True)
    yield
    started = time.perf_counter()
    for index in indexes:
        index.create(connection)
    print(f"  indexes rebuilt: {time.perf_counter() - started:.1f} s", flush=True)


def _clinics(app, other_clinics: int) -> int:
    from saas.extensions import db
    from saas.tenancy.models import Clinic, Organization

    with app.app_context():
        organization = Organization(slug="bench-org", name="ベンチマーク医療法人")
        db.session.add(organization)
        db.session.flush()
        for n in range(other_clinics + 1):
            db.session.add(Clinic(slug=f"bench-{n}", name=f"ベンチ医院{n}", organization_id=organization.id))
        db.session.commit()
        return db.session.scalar(sa.select(Clinic.id).where(Clinic.slug == "bench-0"))


def _friends_sql(dialect: str, clinic_sql: str, count: int, prefix: str) -> str:
    followed = _at(dialect, f"(n * 7919) % {SPAN_SECONDS}")
    return (
        "INSERT INTO friend (clinic_id, line_user_id, display_name, status, followed_at, inflow_source_id,"
        " consent_marketing, consent_booking, attributes, created_at, updated_at) "
        f"SELECT {clinic_sql}, '{prefix}' || n, '患者' || n,"
        " CASE WHEN n % 10 = 0 THEN 'blocked' ELSE 'following' END,"
        f" CASE WHEN n % 50 = 0 THEN NULL ELSE {followed} END, n % 20,"
        " n % 7 <> 0, TRUE, '{}', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP "
    )


def generate(app, args) -> int:
    """All the data, set-based; returns the benchmark clinic's id."""
    from saas.extensions import db

    clinic_id = _clinics(app, args.other_clinics)
    with app.app_context():
        dialect = db.engine.dialect.name
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if dialect == "postgresql":
                connection.execute(sa.text("SET synchronous_commit = off"))
            with _indexes_dropped(connection, ["friend", "friend_tag", "message", "conversation", "audit_event"]):
                _load(connection, dialect, clinic_id, args)
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(sa.text("VACUUM ANALYZE" if dialect == "postgresql" else "ANALYZE"))
    return clinic_id


def _timed(label: str, connection, sql: str, **params) -> None:
    started = time.perf_counter()
    connection.execute(sa.text(sql), params)
    print(f"  {label}: {time.perf_counter() - started:.1f} s", flush=True)


def _load(connection, dialect: str, clinic_id: int, args) -> None:
    n_friends, n_messages = args.friends, args.messages
    _timed(
        "friends",
        connection,
        _friends_sql(dialect, str(clinic_id), n_friends, "Ubench") + f"FROM {_series(dialect, n_friends)}",
    )
    base = connection.scalar(sa.text("SELECT min(id) FROM friend WHERE clinic_id = :c"), {"c": clinic_id})
    others = f"(SELECT min(id) FROM clinic WHERE slug <> 'bench-0') + (n - 1) / {args.other_friends}"
    if args.other_clinics:
        total = args.other_clinics * args.other_friends
        _timed(
            "other clinics' friends",
            connection,
            _friends_sql(dialect, others, total, "Uother") + f"FROM {_series(dialect, total)}",
        )
    _timed(
        "tags",
        connection,
        "INSERT INTO tag (clinic_id, name, color, created_at, updated_at) "
        f"SELECT :c, 'タグ' || n, 'green', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP FROM {_series(dialect, TAGS)}",
        c=clinic_id,
    )
    tag_base = connection.scalar(sa.text("SELECT min(id) FROM tag WHERE clinic_id = :c"), {"c": clinic_id})
    for label, expression in (("tags a", "n % 30"), ("tags b", "(n * 7 + 3) % 30")):
        _timed(
            f"friend {label}",
            connection,
            "INSERT INTO friend_tag (clinic_id, friend_id, tag_id, created_at) "
            f"SELECT :c, :f + n - 1, :t + {expression}, CURRENT_TIMESTAMP FROM {_series(dialect, n_friends)}"
            + (" WHERE (n * 7 + 3) % 30 <> n % 30" if label == "tags b" else ""),
            c=clinic_id,
            f=base,
            t=tag_base,
        )
    step = SPAN_SECONDS / max(n_messages, 1)
    _timed(
        f"{n_messages:,} messages",
        connection,
        "INSERT INTO message (clinic_id, friend_id, direction, kind, text, payload, created_at) "
        f"SELECT :c, :f + n % {n_friends}, CASE WHEN n % 3 = 0 THEN 'out' ELSE 'in' END, 'text',"
        f" 'メッセージ ' || n, '{{}}', {_at(dialect, f'n * {step}')} FROM {_series(dialect, n_messages)}",
        c=clinic_id,
        f=base,
    )
    if args.other_clinics:
        total = args.other_clinics * args.other_friends
        _timed(
            "other clinics' messages",
            connection,
            "INSERT INTO message (clinic_id, friend_id, direction, kind, text, payload, created_at) "
            "SELECT f.clinic_id, f.id, 'in', 'text', 'こんにちは', '{}', f.followed_at FROM friend f"
            " CROSS JOIN (SELECT 1 AS k UNION ALL SELECT 2) AS two WHERE f.clinic_id <> :c AND f.followed_at IS NOT NULL",
            c=clinic_id,
        )
    _roll_up_days(connection, dialect)
    _timed(
        "conversations",
        connection,
        "INSERT INTO conversation (clinic_id, friend_id, status, status_changed_at, last_read_message_id,"
        " last_message_id, last_message_at, unread_count, created_at, updated_at) "
        "SELECT clinic_id, friend_id, CASE WHEN friend_id % 50 = 0 THEN 'open' WHEN friend_id % 50 = 1 THEN 'waiting'"
        " ELSE 'resolved' END, max(created_at), CASE WHEN friend_id % 50 = 0 THEN 0 ELSE max(id) END, max(id),"
        " max(created_at), CASE WHEN friend_id % 50 = 0 THEN 2 ELSE 0 END, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP"
        " FROM message GROUP BY clinic_id, friend_id",
    )
    _timed(
        "friends' last message",
        connection,
        "UPDATE friend SET last_message_at = c.last_message_at FROM conversation c WHERE c.friend_id = friend.id",
    )
    _timed(
        f"{args.audit:,} audit events",
        connection,
        "INSERT INTO audit_event (created_at, clinic_id, actor_email, action, target_type, target_id, details, ip, user_agent) "
        f"SELECT {_at(dialect, f'n * {SPAN_SECONDS / max(args.audit, 1)}')}, :c, 'staff@bench.example',"
        " CASE n % 4 WHEN 0 THEN 'message.send' WHEN 1 THEN 'friends.export' ELSE 'conversation.view' END,"
        f" 'friend', CAST(n % {n_friends} AS TEXT), '{{}}', '127.0.0.1', 'bench' FROM {_series(dialect, args.audit)}",
        c=clinic_id,
    )


def _roll_up_days(connection, dialect: str) -> None:
    """The dashboard's daily roll-up for generated messages (the app keeps it as messages are stored)."""
    day = (
        "CAST(created_at + INTERVAL '9 hours' AS DATE)"
        if dialect == "postgresql"
        else "date(created_at, '+540 minutes')"
    )
    _timed(
        "daily message roll-up",
        connection,
        f"INSERT INTO message_day (clinic_id, day, direction, total) SELECT clinic_id, {day}, direction, count(*)"
        f" FROM message GROUP BY clinic_id, {day}, direction",
    )


def _add_new_tables(app) -> None:
    """Kept data from an older schema: tables added since (filled from the data) — the roll-up."""
    from saas.extensions import db

    with app.app_context():
        db.create_all()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            if not connection.scalar(sa.text("SELECT count(*) FROM message_day")):
                _roll_up_days(connection, db.engine.dialect.name)


class _Counter:
    """SQL statements and the time spent in them (the rest of a request is Python: views, templates)."""

    def __init__(self, engine):
        self.count, self.seconds, self._started = 0, 0.0, 0.0
        sa.event.listen(engine, "before_cursor_execute", self._before)
        sa.event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *args):
        self.count += 1
        self._started = time.perf_counter()

    def _after(self, *args):
        self.seconds += time.perf_counter() - self._started


def _visible_text(html: str) -> str:
    """A page's words without its markup (what a failed benchmark shows of the page it got)."""
    body = html.split("<main", 1)[-1]
    return " ".join(re.sub(r"<[^>]+>", " ", re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", body, flags=re.S)).split())


def _measure_pages(app, clinic_id: int, samples: int) -> dict:
    from saas.common import settle_startup_heap
    from saas.extensions import db
    from saas.tenancy.models import Clinic
    from saas.tenancy.scoping import platform_scope
    from tests.factories import gen_user
    from tests.helpers import login

    with app.app_context():
        with platform_scope("benchmark setup"):
            clinic = db.session.get(Clinic, clinic_id)
            slug = clinic.slug
        for table in ("membership", '"user"'):  # the staff of a previous run on kept data
            db.session.execute(sa.text(f"DELETE FROM {table}"))
        db.session.commit()
        user = gen_user("owner", clinic=clinic)
        with platform_scope("benchmark setup: a friend and a tag to visit"):
            friend_id = db.session.scalar(
                sa.text("SELECT max(friend_id) FROM conversation WHERE clinic_id = :c"), {"c": clinic_id}
            )
            tag_id = db.session.scalar(sa.text("SELECT min(id) FROM tag WHERE clinic_id = :c"), {"c": clinic_id})
        from tests.conftest import IsolatedClient

        app.test_client_class = IsolatedClient  # each request in its own context, as under a server
        client = app.test_client()
        login(client, user)
        db.session.remove()
    first = client.get(f"/c/{slug}/friends").get_data(as_text=True)
    if 'data-testid="friends-next"' not in first:
        raise RuntimeError(f"not signed in or no second page: {_visible_text(first)[:600]}")
    deep = first.split('data-testid="friends-next" href="')[1].split('"')[0].replace("&amp;", "&")
    inbox = client.get(f"/c/{slug}/inbox/").get_data(as_text=True)
    poll = inbox.split('data-testid="inbox-poll"')[0].rsplit('hx-get="', 1)[1].split('"')[0].replace("&amp;", "&")
    pages = {
        "dashboard": f"/c/{slug}/",
        "friends": f"/c/{slug}/friends",
        "friends, next page": deep,
        "friends, by tag": f"/c/{slug}/friends?tag={tag_id}",
        "friend detail": f"/c/{slug}/friends/{friend_id}",
        "inbox": f"/c/{slug}/inbox/",
        "inbox, all": f"/c/{slug}/inbox/?status=all",
        "inbox poll (nothing new)": poll,
        "conversation": f"/c/{slug}/inbox/{friend_id}",
        "audit log": f"/c/{slug}/audit/",
        "delivery history": f"/c/{slug}/deliveries",
    }
    with app.app_context():
        counter, results = _Counter(db.engine), {}
    for url in pages.values():  # a server process has served each page once
        client.get(url)
    settle_startup_heap()  # as gunicorn's post_worker_init does (gunicorn.conf.py)
    for name, url in pages.items():
        for _ in range(3):
            client.get(url)
        timings, statuses = [], set()
        counter.count, counter.seconds = 0, 0.0
        for _ in range(samples):
            started = time.perf_counter()
            statuses.add(client.get(url).status_code)
            timings.append((time.perf_counter() - started) * 1000)
        results[name] = {
            **support.summary(timings),
            "queries": counter.count / samples,
            "sql_ms": counter.seconds * 1000 / samples,
            "status": sorted(statuses),
        }
        row = results[name]
        print(
            f"  {name:<28}{row['p50_ms']:>9.1f}{row['p99_ms']:>9.1f}{row['queries']:>9.0f}{row['sql_ms']:>9.1f}"
            f"  {sorted(statuses)}",
            flush=True,
        )
    return results


def _measure_sql(app, clinic_id: int, statements: dict[str, str], runs: int) -> dict:
    from saas.extensions import db

    results = {}
    with app.app_context(), db.engine.connect() as connection:
        for name, sql in statements.items():
            timings = []
            for _ in range(runs):
                started = time.perf_counter()
                connection.execute(sa.text(sql), {"c": clinic_id}).all()
                timings.append((time.perf_counter() - started) * 1000)
            results[name] = support.summary(timings)
            print(f"  {name:<28}{results[name]['p50_ms']:>9.1f}{results[name]['p99_ms']:>9.1f}", flush=True)
    return results


def _measure_segments(app, clinic_id: int, samples: int) -> dict:
    from saas.delivery.audience import count_audience
    from saas.tenancy.scoping import tenant_scope

    results = {}
    with app.app_context(), tenant_scope(clinic_id):
        for name, segment in SEGMENTS.items():
            if segment.get("tag_ids"):
                segment = {**segment, "tag_ids": [_tag_id(clinic_id, n) for n in segment["tag_ids"]]}
            if segment.get("exclude_tag_ids"):
                segment = {**segment, "exclude_tag_ids": [_tag_id(clinic_id, n) for n in segment["exclude_tag_ids"]]}
            count_audience("segment", segment)
            timings = []
            for _ in range(samples):
                started = time.perf_counter()
                counts = count_audience("segment", segment)
                timings.append((time.perf_counter() - started) * 1000)
            results[name] = {**support.summary(timings), "matched": counts.matched}
            print(
                f"  {name:<28}{results[name]['p50_ms']:>9.1f}{results[name]['p99_ms']:>9.1f}{counts.matched:>9,}",
                flush=True,
            )
    return results


def _tag_id(clinic_id: int, n: int) -> int:
    from saas.extensions import db
    from saas.tenancy.scoping import platform_scope

    with platform_scope("benchmark setup: the tags of a segment"):
        return db.session.scalar(sa.text("SELECT min(id) FROM tag WHERE clinic_id = :c"), {"c": clinic_id}) + n


def _scale(args) -> None:
    postgres = support.production()
    args.messages = args.messages or (10_000_000 if postgres else 1_000_000)
    args.other_clinics = 1_000 if args.other_clinics is None else args.other_clinics
    args.audit = args.audit or (1_000_000 if postgres else 200_000)


def _scale_key(args) -> str:
    return f"{args.friends}/{args.messages}/{args.other_clinics}x{args.other_friends}/{args.audit}"


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
    _add_new_tables(app)
    print(f"\n{'page':<30}{'p50 ms':>9}{'p99 ms':>9}{'queries':>9}{'sql ms':>9}")
    pages = _measure_pages(app, clinic_id, args.samples)
    print(f"\n{'before (the old queries)':<30}{'p50 ms':>9}{'p99 ms':>9}")
    baseline = _measure_sql(
        app,
        clinic_id,
        {
            "badge (old)": OLD_BADGE,
            "inbox list (old)": OLD_INBOX,
            "friends page 1,001 (OFFSET)": OLD_FRIENDS_OFFSET,
            **({"30-day message chart (old)": OLD_MESSAGE_CHART} if support.production() else {}),
        },
        3,
    )
    print(f"\n{'segment count':<30}{'p50 ms':>9}{'p99 ms':>9}{'matched':>9}")
    segments = _measure_segments(app, clinic_id, args.samples)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()
    return {"pages": pages, "baseline": baseline, "segments": segments}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--friends", type=int, default=100_000)
    parser.add_argument("--messages", type=int, default=0, help="default 10,000,000 on Postgres, 1,000,000 on SQLite")
    parser.add_argument("--other-clinics", type=int, default=None, help="default 1,000")
    parser.add_argument("--other-friends", type=int, default=100, help="friends per other clinic")
    parser.add_argument("--audit", type=int, default=0, help="audit events of the clinic")
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--keep", action="store_true", help="keep the generated data for the next run")
    parser.add_argument("--database", default="tsunagu_bench_portal", help="the scratch database's name (Postgres)")
    parser.add_argument("--json", default="", help="write the figures here")
    args = parser.parse_args(argv)
    _scale(args)
    tmp = tempfile.mkdtemp(prefix="tsunagu-portal-bench-")
    os.environ.setdefault("TSUNAGU_INSTANCE_DIR", tmp)
    print(
        f"portal at scale, {support.configuration()}: {args.friends:,} friends, {args.messages:,} messages, "
        f"{args.audit:,} audit events in the clinic; {args.other_clinics:,} other clinics x {args.other_friends:,} friends"
    )
    postgres = support.production()
    database = (
        support.scratch_postgres(args.database, keep=args.keep)
        if postgres
        else nullcontext(f"sqlite:///{tmp}/portal.sqlite3")
    )
    from saas.queues import stop_embedded_servers

    try:
        with database as url:
            os.environ["DATABASE_URL"] = url
            figures = run(args)
    finally:
        stop_embedded_servers()
    result = {
        "configuration": support.configuration(),
        "machine": support.machine(),
        "scale": {
            "friends": args.friends,
            "messages": args.messages,
            "audit": args.audit,
            "other_clinics": args.other_clinics,
            "other_friends": args.other_friends,
        },
        **figures,
    }
    support.write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
