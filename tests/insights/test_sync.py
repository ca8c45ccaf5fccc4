"""LINE's statistics through the sandbox: a delivery, simulated opens and clicks, the sync job,
the stored figures and the delivery page; withheld counts, LINE's 429, units, daily figures."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.common import utcnow
from saas.delivery import services as delivery_services
from saas.extensions import db
from saas.friends.models import Friend
from saas.insights import limits, services
from saas.insights.jobs import sync_clinic_daily, sync_clinic_insights
from saas.insights.models import InsightDaily, InsightDemographic, InsightRequest, InsightUnit, RequestStatus
from saas.queues import get_redis
from saas.steps.models import ScenarioStep, StepEnrolment, StepScenario, StepSend
from saas.tenancy.scoping import tenant_scope
from tests.delivery.support import add_friends, connected_clinic, drain
from tests.factories import gen_user
from tests.helpers import login
from tests.insights.support import LINKED, insight_of, request_ids, run_sync, send

URL = "https://clinic.example/book"


@pytest.fixture
def clinic(sandbox):
    return connected_clinic(sandbox, "1730000001")


def figure(page: str, name: str) -> str:
    found = re.search(rf'data-total="{name}">(.*?)</p>', page, re.S)
    assert found, f"no {name} figure on the page"
    return found.group(1)


def detail_page(client, clinic, delivery_id: int) -> str:
    """The delivery's report, reached from its page (which shows no second copy of the figures)."""
    login(client, gen_user("sender", clinic=clinic))
    response = client.get(f"/c/{clinic.slug}/deliveries/{delivery_id}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "data-figure=" not in page
    report = re.search(r'data-testid="report-card".*?href="([^"]+)"', page, re.S).group(1)
    response = client.get(report)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def operations(sandbox, channel: str, name: str) -> list[dict]:
    return [r for r in sandbox.requests(channel) if r["operation"] == name]


def test_opens_and_clicks_in_line_reach_the_stored_figures_and_the_delivery_page(sandbox, clinic, client):
    patients = add_friends(sandbox, clinic, 4)
    delivery_id = send(clinic, messages=LINKED)
    (request_id,) = request_ids(clinic, delivery_id)
    for patient in patients[:3]:
        sandbox.open_message(clinic.line_channel_id, patient, request_id)
    sent = sandbox.inbox(clinic.line_channel_id, patients[0])[-1]["message"]["template"]["actions"][0]["uri"]
    assert "/l/" in sent, "LINE shows (and counts) the short link we sent"
    sandbox.click(clinic.line_channel_id, patients[0], request_id, sent)

    run_sync()

    row = insight_of(clinic, delivery_id)
    assert (row.delivered, row.unique_impressions, row.unique_clicks, row.reached) == (4, 3, 1, 4)
    assert row.clicks == [{"url": URL, "clicks": 1, "unique_clicks": 1}] and not row.partial
    page = detail_page(client, clinic, delivery_id)
    assert figure(page, "unique-opens") == "3" and figure(page, "unique-clicks") == "1"
    assert figure(page, "blocks-24h") == "0" and URL in page


def test_counts_below_the_privacy_threshold_are_stored_null_and_shown_as_a_dash_with_the_reason(
    sandbox, clinic, client
):
    sandbox.configure(clinic.line_channel_id, privacyThreshold=20)
    patients = add_friends(sandbox, clinic, 5)
    delivery_id = send(clinic, messages=LINKED)
    (request_id,) = request_ids(clinic, delivery_id)
    sandbox.open_message(clinic.line_channel_id, patients[0], request_id)

    run_sync()

    row = insight_of(clinic, delivery_id)
    assert row.unique_impressions is None and row.unique_clicks is None and row.requests_synced == 1
    page = detail_page(client, clinic, delivery_id)
    opens = figure(page, "unique-opens")
    assert 'data-state="withheld"' in opens and "—" in opens and "20人未満" in opens
    assert ">0<" not in opens and figure(page, "unique-clicks") != "0"


def test_a_send_is_not_asked_about_before_line_has_counted_it(sandbox, clinic, app):
    app.config["INSIGHT_FIRST_SYNC_MINUTES"] = 60
    add_friends(sandbox, clinic, 2)
    delivery_id = send(clinic)
    run_sync()
    assert not operations(sandbox, clinic.line_channel_id, "getMessageEvent")
    with tenant_scope(clinic.id):
        row = db.session.scalar(sa.select(InsightRequest))
        assert row.status == RequestStatus.PENDING and row.next_sync_at >= row.sent_at + timedelta(minutes=59)
    assert insight_of(clinic, delivery_id).requests_total == 1


def test_a_429_from_line_cools_the_channel_off_and_the_request_is_asked_again_later(sandbox, clinic):
    patients = add_friends(sandbox, clinic, 3)
    delivery_id = send(clinic)
    (request_id,) = request_ids(clinic, delivery_id)
    sandbox.open_message(clinic.line_channel_id, patients[0], request_id)
    sandbox.configure(clinic.line_channel_id, failNext=[429])

    first = sync_clinic_insights(clinic.id)
    assert first["stopped"] and first["requests"] == 0
    with tenant_scope(clinic.id):
        row = db.session.scalar(sa.select(InsightRequest))
        assert row.status == RequestStatus.PENDING and row.attempts == 1 and "429" in row.last_error
        assert row.next_sync_at > utcnow() + timedelta(minutes=1)
        assert limits.cooling_off(clinic) > 60

    calls = len(operations(sandbox, clinic.line_channel_id, "getMessageEvent"))
    sync_clinic_insights(clinic.id)  # at once again: LINE is not asked while the channel cools off
    assert len(operations(sandbox, clinic.line_channel_id, "getMessageEvent")) == calls

    get_redis().delete(f"tsunagu:{{ch:{clinic.line_channel_id}}}:insight:cool-off")  # the cool-off passed
    with tenant_scope(clinic.id):
        db.session.execute(sa.update(InsightRequest).values(next_sync_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert sync_clinic_insights(clinic.id)["requests"] == 1
    assert insight_of(clinic, delivery_id).unique_impressions == 1


def test_the_channel_budget_stops_a_run_before_lines_hourly_limit(sandbox, clinic, app):
    app.config["INSIGHT_RATE_LIMITS"] = {"getMessageEvent": (2, 3600.0)}
    try:
        add_friends(sandbox, clinic, 3)
        for _ in range(3):
            send(clinic)
        counts = sync_clinic_insights(clinic.id)
    finally:
        app.config.pop("INSIGHT_RATE_LIMITS")
    assert counts["requests"] == 2 and counts["stopped"]
    assert len(operations(sandbox, clinic.line_channel_id, "getMessageEvent")) == 2


def test_segment_and_step_sends_carry_an_aggregation_unit_and_its_figures_are_synced(sandbox, clinic):
    patients = add_friends(sandbox, clinic, 3, attributes={"interest": "子育て"})
    segment = {"attributes": {"interest": "子育て"}}
    first = send(clinic, kind="segment", segment=segment)
    second = send(clinic, kind="segment", segment=dict(segment))
    multicasts = operations(sandbox, clinic.line_channel_id, "multicast")
    units = {tuple(r["body"].get("customAggregationUnits") or ()) for r in multicasts}
    assert len(units) == 1 and re.fullmatch(r"seg_[0-9a-f]{16}", units.pop()[0]), "one unit for one segment"
    for delivery_id in (first, second):
        sandbox.open_message(clinic.line_channel_id, patients[0], request_ids(clinic, delivery_id)[0])
    sandbox.open_message(clinic.line_channel_id, patients[1], request_ids(clinic, second)[0])

    run_sync()

    with tenant_scope(clinic.id):
        unit = db.session.scalar(sa.select(InsightUnit))
        assert unit.kind == "segment" and unit.unique_impressions == 2 and unit.synced_at is not None
        assert services.unit_stats(unit.name).id == unit.id


def test_a_step_delivery_is_counted_under_its_step(sandbox, clinic):
    add_friends(sandbox, clinic, 2)
    with tenant_scope(clinic.id):
        friend_ids = list(db.session.scalars(sa.select(Friend.id)))
        scenario = StepScenario(key="checkup", name="健診のご案内")
        db.session.add(scenario)
        db.session.flush()
        step = ScenarioStep(scenario_id=scenario.id, messages=[{"type": "text", "text": "検診の時期です"}])
        enrolment = StepEnrolment(scenario_id=scenario.id, friend_id=friend_ids[0])
        db.session.add_all([step, enrolment])
        db.session.flush()
        sending = delivery_services.create_for_friends(friend_ids, step.messages, title="健診のご案内")
        db.session.add(
            StepSend(
                enrolment_id=enrolment.id,
                scenario_id=scenario.id,
                step_id=step.id,
                friend_id=friend_ids[0],
                delivery_id=sending.id,
            )
        )
        db.session.commit()
        delivery_services.submit(sending)
        step_id, delivery_id = step.id, sending.id
    drain()
    (multicast,) = operations(sandbox, clinic.line_channel_id, "multicast")
    assert multicast["body"]["customAggregationUnits"] == [f"step_{step_id}"]
    run_sync()
    assert insight_of(clinic, delivery_id).step_id == step_id


def test_no_unit_is_attached_once_the_months_unit_names_are_used_up(sandbox, clinic, app):
    app.config["INSIGHT_UNITS_PER_MONTH"] = 1
    add_friends(sandbox, clinic, 2)
    send(clinic)
    send(clinic)
    bodies = [r["body"] for r in operations(sandbox, clinic.line_channel_id, "multicast")]
    assert [b.get("customAggregationUnits") for b in bodies] == [[bodies[0]["customAggregationUnits"][0]], None]


def test_an_account_that_may_not_use_units_still_gets_its_sends_once_each_without_them(sandbox, clinic):
    sandbox.configure(clinic.line_channel_id, aggregationUnits=False)
    patients = add_friends(sandbox, clinic, 2)
    first, second = send(clinic), send(clinic)
    multicasts = operations(sandbox, clinic.line_channel_id, "multicast")
    assert [(r["status"], bool(r["body"].get("customAggregationUnits"))) for r in multicasts] == [
        (400, True),
        (200, False),
        (200, False),  # the channel is not offered units again
    ]
    assert {len(sandbox.inbox(clinic.line_channel_id, p)) for p in patients} == {2}
    assert all(request_ids(clinic, first) + request_ids(clinic, second))


def test_yesterdays_followers_deliveries_and_todays_demographics_are_stored(sandbox, clinic):
    add_friends(sandbox, clinic, 3)
    assert sync_clinic_daily(clinic.id) >= 2
    with tenant_scope(clinic.id):
        days = db.session.scalars(sa.select(InsightDaily).order_by(InsightDaily.day)).all()
        assert len(days) == 3 and {d.followers_status for d in days} == {"ready"}
        assert set(days[-1].deliveries) >= {"apiMulticast", "apiPush"}
        assert db.session.scalar(sa.select(InsightDemographic.available)) is True
        calls = len(sandbox.requests(clinic.line_channel_id))
    sync_clinic_daily(clinic.id)  # ready days and today's snapshot are not asked again
    assert len(sandbox.requests(clinic.line_channel_id)) == calls


def test_another_clinics_figures_cannot_be_read_or_synced_from_this_one(sandbox, clinic, client):
    other = connected_clinic(sandbox, "1730000002")
    add_friends(sandbox, other, 2)
    theirs = send(other)
    run_sync()
    with tenant_scope(clinic.id):
        assert not services.delivery_stats(theirs).synced
        assert services.deliveries_stats([theirs])[theirs].reached == 0
    assert insight_of(other, theirs).requests_synced == 1
    login(client, gen_user("sender", clinic=clinic))
    assert client.get(f"/c/{clinic.slug}/deliveries/{theirs}").status_code == 404
