"""Step conditions and goals on what the patient did: used a coupon, answered a form."""

from __future__ import annotations

import sqlalchemy as sa
from werkzeug.datastructures import MultiDict

from saas.coupons import redemption
from saas.extensions import db
from saas.forms.models import Form, FormAnswer
from saas.friends.models import Friend
from saas.steps import conditions, forms, triggers
from saas.steps.models import StepScenario
from saas.tenancy.scoping import tenant_scope
from tests.coupons.support import coupon_clinic, running_coupon, ticket_for
from tests.steps.support import enrolment, scenario


def _friend_ids(clinic, user_ids) -> list[int]:
    with tenant_scope(clinic.id):
        rows = db.session.execute(sa.select(Friend.line_user_id, Friend.id).where(Friend.line_user_id.in_(user_ids)))
        found = dict(rows.all())
    return [found[u] for u in user_ids]


def test_a_step_can_require_a_coupon_used_or_a_form_answered(sandbox, live_server):
    clinic, _, patients = coupon_clinic(sandbox, live_server, friends=3)
    redeemer, answerer, neither = _friend_ids(clinic, patients)
    laser = running_coupon(clinic)
    goods = running_coupon(clinic, title="物販 サプリ10%オフ", purpose="goods", service="サプリメント")
    with tenant_scope(clinic.id):
        redemption.redeem(ticket_for(clinic, laser, patients[0]).code)
        form = Form(name="来院後アンケート", questions=[])
        db.session.add(form)
        db.session.flush()
        answer = FormAnswer(form_id=form.id, friend_id=answerer)
        answer.values = {"q1": "満足"}
        db.session.add(answer)
        db.session.commit()
        everyone = [redeemer, answerer, neither]

        def passing(*rules, match="all"):
            return conditions.passing({"match": match, "rules": list(rules)}, everyone)

        assert passing({"kind": "coupon_used"}) == {redeemer}
        assert passing({"kind": "coupon_used", "coupon_id": laser.id}) == {redeemer}
        assert passing({"kind": "coupon_used", "coupon_id": goods.id}) == set()
        assert passing({"kind": "coupon_used", "value": False}) == {answerer, neither}
        assert passing({"kind": "form_answered", "form_id": form.id}) == {answerer}
        assert passing({"kind": "form_answered", "value": False}) == {redeemer, neither}
        assert passing({"kind": "coupon_used"}, {"kind": "form_answered"}, match="any") == {redeemer, answerer}


def test_the_step_form_reads_and_shows_the_done_conditions():
    form = MultiDict(
        {"cond0_kind": "coupon_not_used", "cond0_coupon": "7", "cond1_kind": "form_answered", "cond1_form": ""}
    )
    rules = forms.read_step(form)["conditions"]["rules"]
    assert rules == [
        {"kind": "coupon_used", "value": False, "coupon_id": 7},
        {"kind": "form_answered", "value": True},
    ]

    class Step:
        name, delay_kind, delay_value, delay_unit, at_time, otherwise, goto_step_id = (
            "",
            "after_start",
            0,
            "days",
            "",
            "skip",
            None,
        )
        conditions, actions, messages = {"rules": rules}, [], []

    shown = forms.step_form_values(Step())
    assert (shown["cond0_kind"], shown["cond0_coupon"]) == ("coupon_not_used", "7")
    assert (shown["cond1_kind"], shown["cond1_form"]) == ("form_answered", "")


def test_any_coupon_used_as_a_scenarios_goal_stops_it(sandbox, live_server):
    clinic, _, patients = coupon_clinic(sandbox, live_server, friends=1)
    goals = forms.read_scenario(MultiDict({"name": "x", "goal_coupon_used": "1", "other_goals": "[]"}))["goals"]
    assert goals == [{"kind": "coupon_used"}]
    coupon = running_coupon(clinic)
    step = {"delay_value": 3, "delay_unit": "days", "messages": [{"type": "text", "text": "ご来院お待ちしています"}]}
    aims = scenario(clinic, "どのクーポンでも", [step], goals=goals)
    with tenant_scope(clinic.id):
        friend = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == patients[0]))
        triggers.start(friend, db.session.get(StepScenario, aims))
        db.session.commit()
        redemption.redeem(ticket_for(clinic, coupon, patients[0]).code)
    stopped = enrolment(clinic, aims, patients[0])
    assert (stopped.status, stopped.stop_reason) == ("stopped", "goal")
