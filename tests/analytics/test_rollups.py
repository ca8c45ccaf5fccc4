"""Daily roll-ups kept by jobs: what a commit marks is recomputed by a real RQ worker, and the
nightly catch-up heals what a lost mark left behind."""

from __future__ import annotations

import sqlalchemy as sa

from saas.analytics import jobs
from saas.analytics.marks import DIRTY_KEY
from saas.analytics.models import ClinicDay, SourceDay
from saas.extensions import db
from saas.queues import get_redis
from saas.sources.models import InflowSource
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.analytics.support import add_booking, add_friends, block, japan_time, japan_today, run_jobs
from tests.factories import gen_clinic


def _day_row(clinic_id: int, days_ago: int) -> ClinicDay | None:
    from datetime import timedelta

    with platform_scope("test: read roll-ups"):
        return db.session.scalar(
            sa.select(ClinicDay).where(
                ClinicDay.clinic_id == clinic_id, ClinicDay.day == japan_today() - timedelta(days=days_ago)
            )
        )


def _source(clinic_id: int, name: str) -> int:
    with tenant_scope(clinic_id):
        source = InflowSource(name=name)
        db.session.add(source)
        db.session.commit()
        return source.id


def test_follows_blocks_and_bookings_committed_today_reach_the_day_row_through_the_job():
    clinic, other = gen_clinic(), gen_clinic()
    poster = _source(clinic.id, "待合室ポスター")
    ids = add_friends(
        clinic.id,
        {"followed_at": japan_time(0, 9), "inflow_source_id": poster},
        {"followed_at": japan_time(0, 11), "inflow_source_id": poster},
        {"followed_at": japan_time(0, 12)},
        {"followed_at": japan_time(20)},
    )
    add_friends(other.id, {"followed_at": japan_time(0, 9)})
    block(clinic.id, ids[1], japan_time(0, 15))
    add_booking(clinic.id, ids[0], japan_time(0, 16))
    assert get_redis().scard(DIRTY_KEY) > 0

    run_jobs()

    row = _day_row(clinic.id, 0)
    assert (row.follows, row.blocks, row.bookings, row.friends_total) == (3, 1, 1, 3)
    assert _day_row(other.id, 0).follows == 1
    assert get_redis().scard(DIRTY_KEY) == 0
    with platform_scope("test: read roll-ups"):
        sources = {
            s.source_id: (s.follows, s.blocks, s.bookings)
            for s in db.session.scalars(sa.select(SourceDay).where(SourceDay.clinic_id == clinic.id))
        }
    assert sources == {poster: (2, 1, 1), 0: (1, 0, 0)}


def test_a_friend_who_blocks_moves_from_the_total_and_a_second_run_changes_nothing():
    clinic = gen_clinic()
    (friend,) = add_friends(clinic.id, {"followed_at": japan_time(3)})
    jobs.catch_up(5)
    assert _day_row(clinic.id, 0).friends_total == 1
    block(clinic.id, friend, japan_time(0, 8))
    run_jobs()
    run_jobs()
    jobs.catch_up(5)
    assert (_day_row(clinic.id, 0).friends_total, _day_row(clinic.id, 0).blocks) == (0, 1)
    assert (_day_row(clinic.id, 1).friends_total, _day_row(clinic.id, 3).follows) == (1, 1)


def test_the_nightly_catch_up_heals_days_whose_marks_redis_lost():
    clinic = gen_clinic()
    add_friends(clinic.id, {"followed_at": japan_time(1, 20)}, {"followed_at": japan_time(2, 7)})
    get_redis().flushdb()  # the marks and the queued job are gone
    run_jobs()
    assert _day_row(clinic.id, 1) is None

    get_redis().flushdb()
    from saas.queues import get_queue

    get_queue("bulk").enqueue(jobs.catch_up_rollups)
    run_jobs()

    assert _day_row(clinic.id, 1).follows == 1 and _day_row(clinic.id, 2).follows == 1
    assert _day_row(clinic.id, 0).friends_total == 2


def test_a_failed_commit_marks_nothing():
    clinic = gen_clinic()
    with tenant_scope(clinic.id):
        from saas.friends.models import Friend

        db.session.add(Friend(line_user_id="U" + "9" * 32, attributes={}, followed_at=japan_time(0)))
        db.session.flush()
        db.session.rollback()
    assert get_redis().scard(DIRTY_KEY) == 0
