"""Plans and message quota: reservation, refusal, trimming, release, warnings, forecast, reconcile."""

from __future__ import annotations

import threading
from contextlib import suppress
from datetime import datetime

import pytest
import sqlalchemy as sa

from saas.extensions import db
from saas.queues import get_redis
from saas.quota.counter import QuotaExceeded, Reservation, _redis_key, reconcile_with_line, release, reserve
from saas.quota.models import ClinicPlan, LinePlan, MessageUsage, MessageUsageDay, QuotaReservation
from saas.quota.plans import extra_cost_yen, get_plan, load_plans, set_clinic_plan
from saas.quota.usage import daily_usage, usage
from saas.tenancy.scoping import TenantScopeError, platform_scope, tenant_scope
from tests.factories import gen_clinic, gen_user
from tests.helpers import assert_rows_isolated, login

MID_JULY = datetime(2025, 7, 15, 3, 0)  # 12:00 JST on the 15th of a 31-day month


@pytest.fixture
def clinic():
    load_plans()
    return gen_clinic()


def on_plan(clinic, code, **options):
    with tenant_scope(clinic.id):
        set_clinic_plan(clinic.id, code, **options)


def test_plans_are_loaded_from_the_data_file_and_reloading_changes_nothing(clinic):
    load_plans()
    plans = {p.code: p for p in db.session.scalars(sa.select(LinePlan))}
    assert set(plans) == {"free", "light", "standard"}
    assert (plans["free"].free_messages, plans["free"].monthly_fee_yen, plans["free"].allows_extra) == (200, 0, False)
    assert (plans["light"].free_messages, plans["light"].monthly_fee_yen, plans["light"].allows_extra) == (
        5000,
        5000,
        False,
    )
    assert (plans["standard"].free_messages, plans["standard"].monthly_fee_yen) == (30000, 15000)
    assert plans["standard"].extra_price_tiers[0] == {"up_to": 50000, "yen": 3.0}


def test_a_clinic_without_a_plan_is_on_the_free_communication_plan(clinic):
    with tenant_scope(clinic.id):
        assert usage(clinic.id).limit == 200


def test_reserving_counts_the_messages_in_redis_and_the_database(clinic):
    with tenant_scope(clinic.id):
        granted = reserve(clinic.id, 150, now=MID_JULY)
        assert (granted.granted, granted.trimmed, granted.remaining, granted.limit) == (150, 0, 50, 200)
        assert db.session.scalar(sa.select(MessageUsage.used)) == 150
        assert db.session.scalar(sa.select(MessageUsageDay.used)) == 150
    assert int(get_redis().get(_redis_key(clinic.id, "2025-07"))) == 150


def test_a_send_over_a_plan_without_extra_messages_is_refused_with_the_numbers(clinic):
    with tenant_scope(clinic.id):
        reserve(clinic.id, 150, now=MID_JULY)
        with pytest.raises(QuotaExceeded) as refused:
            reserve(clinic.id, 80, now=MID_JULY)
        assert (refused.value.needed, refused.value.remaining, refused.value.limit) == (80, 50, 200)
        assert "必要 80通 / 残り 50通 / 上限 200通" in str(refused.value)
        assert usage(clinic.id, now=MID_JULY).used == 150, "a refused send reserves nothing"


def test_a_send_is_trimmed_to_what_is_left_only_when_the_user_allowed_it(clinic):
    with tenant_scope(clinic.id):
        reserve(clinic.id, 150, now=MID_JULY)
        trimmed = reserve(clinic.id, 80, allow_trim=True, now=MID_JULY)
        assert (trimmed.granted, trimmed.trimmed, trimmed.remaining) == (50, 30, 0)
        nothing_left = reserve(clinic.id, 10, allow_trim=True, now=MID_JULY)
        assert (nothing_left.granted, nothing_left.trimmed) == (0, 10)
        assert usage(clinic.id, now=MID_JULY).used == 200


def test_standard_plan_with_extra_messages_sends_past_the_free_allowance_up_to_the_cap(clinic):
    on_plan(clinic, "standard", extra_allowed=True, extra_cap=1000)
    with tenant_scope(clinic.id):
        assert reserve(clinic.id, 30500, now=MID_JULY).granted == 30500
        with pytest.raises(QuotaExceeded) as refused:
            reserve(clinic.id, 600, now=MID_JULY)
        assert (refused.value.remaining, refused.value.limit) == (500, 31000)


def test_extra_messages_cannot_be_allowed_on_the_light_plan(clinic):
    with tenant_scope(clinic.id), pytest.raises(ValueError, match="ライトプラン"):
        set_clinic_plan(clinic.id, "light", extra_allowed=True)


def _reserve_in_thread(app, clinic_id, count, allow_trim, results, barrier):
    with app.app_context(), tenant_scope(clinic_id):
        barrier.wait()
        try:
            results.append(reserve(clinic_id, count, allow_trim=allow_trim).granted)
        except QuotaExceeded:
            results.append("refused")
        finally:
            db.session.remove()


@pytest.mark.parametrize("allow_trim", [False, True])
def test_concurrent_sends_that_together_exceed_the_quota_leave_the_clinic_within_it(app, clinic, allow_trim):
    on_plan(clinic, "light")
    results: list = []
    barrier = threading.Barrier(8)
    threads = [
        threading.Thread(target=_reserve_in_thread, args=(app, clinic.id, 900, allow_trim, results, barrier))
        for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    granted = sum(r for r in results if r != "refused")
    db.session.expire_all()
    with tenant_scope(clinic.id):
        recorded = usage(clinic.id).used
        reservations = db.session.scalars(sa.select(QuotaReservation.granted)).all()
    assert granted <= 5000 and recorded == granted == sum(reservations)
    if allow_trim:
        assert granted == 5000, "with trimming the last sender gets exactly what was left"
    else:
        assert results.count("refused") == 3 and granted == 4500


def test_release_gives_back_unused_messages_once(clinic):
    with tenant_scope(clinic.id):
        reservation = reserve(clinic.id, 200, now=MID_JULY)
        release(Reservation.from_dict(reservation.as_dict()), 40)
        assert usage(clinic.id, now=MID_JULY).used == 160
        assert reserve(clinic.id, 40, now=MID_JULY).granted == 40
        with pytest.raises(ValueError):
            release(reservation, 161)
        assert usage(clinic.id, now=MID_JULY).used == 200


def test_redis_losing_the_count_falls_back_to_the_database(clinic):
    with tenant_scope(clinic.id):
        reserve(clinic.id, 190, now=MID_JULY)
        get_redis().flushdb()
        with pytest.raises(QuotaExceeded) as refused:
            reserve(clinic.id, 20, now=MID_JULY)
        assert refused.value.remaining == 10


@pytest.mark.parametrize(("sent", "warning"), [(159, "none"), (160, "80"), (199, "80"), (200, "100")])
def test_warnings_at_80_and_100_percent(clinic, sent, warning):
    with tenant_scope(clinic.id):
        reserve(clinic.id, sent)
        assert usage(clinic.id).warning == warning


def test_projected_cost_on_standard_extrapolates_the_month_and_prices_the_tiers(clinic):
    on_plan(clinic, "standard", extra_allowed=True)
    with tenant_scope(clinic.id):
        reserve(clinic.id, 30000, now=MID_JULY)
        summary = usage(clinic.id, now=MID_JULY)
    assert summary.projected_used == 62000  # 30,000 in 15 days of a 31-day month
    # 30,000 free, 20,000 at ¥3.0, 12,000 at ¥2.8, plus the ¥15,000 fee
    assert summary.projected_cost_yen == pytest.approx(15000 + 20000 * 3.0 + 12000 * 2.8)
    assert summary.cost_so_far_yen == 15000
    assert extra_cost_yen(get_plan("standard"), 30000) == 0


def test_the_daily_counts_follow_sends_and_releases(clinic):
    with tenant_scope(clinic.id):
        reserve(clinic.id, 30, now=datetime(2025, 7, 2, 3))
        reservation = reserve(clinic.id, 50, now=MID_JULY)
        release(reservation, 5)
        days = dict(daily_usage(clinic.id, now=MID_JULY))
    assert len(days) == 15 and days[datetime(2025, 7, 2).date()] == 30 and days[MID_JULY.date()] == 45


def test_the_month_starts_again_in_japan_time(clinic):
    with tenant_scope(clinic.id):
        reserve(clinic.id, 200, now=datetime(2025, 7, 31, 14, 59))  # 23:59 JST on 31 July
        assert reserve(clinic.id, 200, now=datetime(2025, 7, 31, 15, 0)).granted == 200  # 00:00 JST 1 August


def test_reconcile_raises_our_count_to_lines_when_line_counted_more(clinic, caplog):
    with tenant_scope(clinic.id):
        reserve(clinic.id, 100)
        result = reconcile_with_line(clinic.id, 130)
        assert (result.ours_before, result.added) == (100, 30)
        assert "quota drift" in caplog.text
        summary = usage(clinic.id)
        assert (summary.used, summary.line_reported) == (130, 130)
        with pytest.raises(QuotaExceeded) as refused:
            reserve(clinic.id, 71)
        assert refused.value.remaining == 70
        assert reconcile_with_line(clinic.id, 90).added == 0
        assert usage(clinic.id).used == 130, "LINE counting fewer (blocked friends) never lowers ours"
        assert reconcile_with_line(clinic.id, 130, line_limit=5000).limit_mismatch, "LINE says light, we say free"
        assert not reconcile_with_line(clinic.id, 130, line_limit=200).limit_mismatch


def test_quota_cannot_be_reserved_outside_the_clinics_scope(clinic):
    other = gen_clinic()
    with tenant_scope(other.id), pytest.raises(TenantScopeError):
        reserve(clinic.id, 1)


def test_quota_rows_are_isolated_between_clinics(clinic):
    other = gen_clinic()
    for owner in (clinic, other):
        on_plan(owner, "light")
        with tenant_scope(owner.id):
            reserve(owner.id, 10)
    for model in (ClinicPlan, MessageUsage, MessageUsageDay, QuotaReservation):
        with platform_scope("comparing two clinics' rows"):
            row_a, row_b = (db.session.scalar(sa.select(model).filter_by(clinic_id=c.id)) for c in (clinic, other))
            assert_rows_isolated(model, row_a, row_b)


def test_quota_page_shows_usage_plan_warning_and_chart(client, clinic):
    on_plan(clinic, "light")
    with tenant_scope(clinic.id):
        reserve(clinic.id, 4200)
    login(client, gen_user("viewer", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/quota").get_data(as_text=True)
    assert "ライトプラン" in page and "4,200" in page and "84.0%" in page
    assert 'data-warning="80"' in page and "daily-usage" in page
    assert "通数・プラン" in page, "the sidebar links the page"


def test_quota_page_of_another_clinic_is_not_found(client, clinic):
    other = gen_clinic()
    login(client, gen_user("viewer", clinic=clinic))
    assert client.get(f"/c/{other.slug}/quota").status_code == 404


def test_the_first_use_of_plans_survives_another_process_loading_them_at_the_same_moment(app):
    """Two first sends at once: the other one inserts a plan row between our look-up and our insert
    (on SQLite it has to wait for our write lock, on Postgres it commits at once)."""
    counted, competitors, engine = [], [], db.engine

    def competitor():
        with suppress(sa.exc.IntegrityError), engine.connect() as other:
            other.execute(sa.insert(LinePlan).values(code="free", name="free", extra_price_tiers=[]))
            other.commit()

    def insert_free_plan_meanwhile(_connection, _cursor, statement, *_args):
        counted.extend(["count"] if "count(*)" in statement and "FROM line_plan" in statement else [])
        if counted and not competitors and "line_plan.code =" in statement:
            competitors.append(threading.Thread(target=competitor))
            competitors[0].start()
            competitors[0].join(timeout=1)

    sa.event.listen(db.engine, "after_cursor_execute", insert_free_plan_meanwhile)
    try:
        plan = get_plan("free")
    finally:
        sa.event.remove(db.engine, "after_cursor_execute", insert_free_plan_meanwhile)
        competitors[0].join()

    assert (plan.code, plan.free_messages) == ("free", 200)
    assert {p.code for p in db.session.scalars(sa.select(LinePlan))} == {"free", "light", "standard"}
    assert get_plan("standard").free_messages == 30000
