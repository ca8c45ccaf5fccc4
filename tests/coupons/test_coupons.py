"""Coupons through the sandbox: created with LINE's coupon API, sent by the delivery pipeline,
opened by the patient with LINE Login, redeemed once at the desk, refused with a reason."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.common import utcnow
from saas.coupons import redemption, services
from saas.coupons.models import Coupon, CouponRedemption, CouponStatus, CouponTicket
from saas.extensions import db
from saas.tenancy.scoping import tenant_scope
from tests.conftest import csrf_token
from tests.coupons.support import Phone, coupon_clinic, running_coupon, ticket_for, values
from tests.delivery.support import drain
from tests.factories import gen_user
from tests.helpers import assert_rows_isolated, login, original_url


@pytest.fixture
def clinic(sandbox, live_server):
    return coupon_clinic(sandbox, live_server)


@pytest.fixture
def staff(client, clinic):
    login(client, gen_user("sender", clinic=clinic[0]))
    return client


def _form(client, clinic, **changes) -> dict:
    today = utcnow().date()
    fields = {
        "csrf_token": csrf_token(client),
        "purpose": "self_pay",
        "service": "人間ドック",
        "title": "人間ドック 3,000円引き",
        "reward_kind": "discount_yen",
        "reward_value": "3000",
        "starts_on": today.isoformat(),
        "ends_on": (today + timedelta(days=14)).isoformat(),
        "per_patient_limit": "1",
        "target": "all",
    }
    return fields | changes


def _coupons(clinic) -> list[Coupon]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return list(db.session.scalars(sa.select(Coupon)))


def test_a_coupon_for_insured_care_is_refused_with_the_reason_and_nothing_is_saved(staff, clinic):
    answer = staff.post(f"/c/{clinic[0].slug}/coupons/", data=_form(staff, clinic, purpose="insured"))
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400
    assert "保険診療の費用を割り引く・無料にするクーポンは作れません" in page and "療養担当規則" in page
    assert _coupons(clinic[0]) == []


def test_insured_fees_named_in_a_self_pay_coupon_are_refused_too(staff, clinic):
    form = _form(staff, clinic, title="初診料 半額クーポン")
    page = staff.post(f"/c/{clinic[0].slug}/coupons/", data=form).get_data(as_text=True)
    assert "「初診料」は保険診療の費用です" in page and _coupons(clinic[0]) == []
    with pytest.raises(services.CouponProblem, match="保険診療"):
        services.check(values(service="保険診療の再診", purpose="checkup"))


def test_a_coupon_is_created_on_line_sent_opened_from_line_and_redeemed_once_at_the_desk(
    staff, clinic, sandbox, live_server
):
    clinic, channel, patients = clinic
    saved = staff.post(f"/c/{clinic.slug}/coupons/", data=_form(staff, clinic))
    assert saved.status_code == 302
    coupon = _coupons(clinic)[0]
    staff.post(f"/c/{clinic.slug}/coupons/{coupon.id}/publish", data={"csrf_token": csrf_token(staff)})
    coupon = _coupons(clinic)[0]
    assert coupon.status == CouponStatus.RUNNING
    on_line = [r for r in sandbox.requests(channel) if r["operation"] == "createCoupon"]
    assert (
        on_line[0]["body"]["title"] == "人間ドック 3,000円引き"
        and on_line[0]["response"]["couponId"] == coupon.line_coupon_id
    )

    sent = staff.post(f"/c/{clinic.slug}/coupons/{coupon.id}/send", data={"csrf_token": csrf_token(staff)})
    assert "/deliveries/" in sent.headers["Location"]  # two friends: below the mis-send guard's threshold
    delivery_id = int(re.search(r"/deliveries/(\d+)", sent.headers["Location"]).group(1))
    drain()
    shown = sandbox.chat(channel, patients[0])
    assert shown[-2]["message"] == {"type": "coupon", "couponId": coupon.line_coupon_id}
    assert shown[-2]["coupon"]["title"] == "人間ドック 3,000円引き"
    link = shown[-1]["message"]["template"]["actions"][0]["uri"]
    assert "/l/" in link, "sent as a tracked short link"
    assert original_url(link).endswith(f"/book/{clinic.slug}/coupons/{coupon.public_id}?d={delivery_id}")

    page = Phone(patients[0]).open(link)
    assert page.status_code == 200 and "使えます" in page.text
    code = re.search(r'data-testid="coupon-code">([A-Z0-9]{4})-([A-Z0-9]{4})<', page.text).groups()
    first = staff.post(f"/c/{clinic.slug}/coupons/desk", data={"csrf_token": csrf_token(staff), "code": "-".join(code)})
    assert first.status_code == 200 and "利用しました" in first.get_data(as_text=True)
    again = staff.post(f"/c/{clinic.slug}/coupons/desk", data={"csrf_token": csrf_token(staff), "code": "".join(code)})
    assert again.status_code == 409 and "このクーポンは使用済みです" in again.get_data(as_text=True)

    with tenant_scope(clinic.id):
        used = db.session.scalars(sa.select(CouponRedemption)).one()
        audited = db.session.scalars(sa.select(AuditEvent).where(AuditEvent.action == "coupon.redeemed")).one()
    assert used.delivery_id == delivery_id and audited.details["delivery_id"] == delivery_id
    assert "使用済み" in Phone(patients[0]).open(link).text


def _race(app, clinic_id: int, code: str, actors) -> list[str]:
    barrier, outcomes = threading.Barrier(len(actors), timeout=20), []

    def desk(actor) -> None:
        with app.app_context(), tenant_scope(clinic_id):
            barrier.wait()
            try:
                redemption.redeem(code, actor)
                outcomes.append("redeemed")
            except redemption.RedemptionRefused as refused:
                outcomes.append(refused.kind)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=desk, args=(actor,)) for actor in actors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_two_desks_redeeming_one_code_at_the_same_moment_get_one_use(app, clinic):
    clinic, _, patients = clinic
    coupon = running_coupon(clinic)
    ticket = ticket_for(clinic, coupon, patients[0])
    assert _race(app, clinic.id, ticket.code, [None, None]) == ["redeemed", "used"]
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(CouponRedemption.id))) == 1
        assert db.session.get(Coupon, coupon.id).used_count == 1


def test_two_desk_requests_at_once_redeem_once(app, clinic):
    clinic, _, patients = clinic
    ticket = ticket_for(clinic, running_coupon(clinic), patients[0])
    desks = []
    for _ in range(2):
        desk = app.test_client()
        login(desk, gen_user("responder", clinic=clinic))
        desks.append((desk, csrf_token(desk)))
    barrier, statuses, url, code = threading.Barrier(2, timeout=20), [], f"/c/{clinic.slug}/coupons/desk", ticket.code

    def press(desk, token) -> None:
        barrier.wait()
        answer = desk.post(url, data={"csrf_token": token, "code": code})
        statuses.append(answer.status_code)

    threads = [threading.Thread(target=press, args=pair) for pair in desks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 409]


def test_the_last_use_of_a_limited_coupon_goes_to_one_of_two_patients(app, clinic):
    clinic, _, patients = clinic
    coupon = running_coupon(clinic, total_limit=1)
    codes = [ticket_for(clinic, coupon, user).code for user in patients]
    barrier, outcomes = threading.Barrier(2, timeout=20), []

    def desk(code) -> None:
        with app.app_context(), tenant_scope(clinic.id):
            barrier.wait()
            try:
                redemption.redeem(code)
                outcomes.append("redeemed")
            except redemption.RedemptionRefused as refused:
                outcomes.append(refused.kind)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=desk, args=(code,)) for code in codes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["redeemed", "used_up"]


def test_expired_closed_and_mistyped_codes_are_refused_with_a_reason(staff, clinic):
    clinic, _, patients = clinic
    coupon = running_coupon(clinic)
    expired = ticket_for(clinic, coupon, patients[0])
    with tenant_scope(clinic.id):
        db.session.get(Coupon, coupon.id).ends_at = utcnow() - timedelta(minutes=1)
        db.session.commit()

    def desk(code: str) -> str:
        answer = staff.post(f"/c/{clinic.slug}/coupons/desk", data={"csrf_token": csrf_token(staff), "code": code})
        assert answer.status_code == 409
        return re.search(r'data-testid="desk-reason">([^<]+)<', answer.get_data(as_text=True)).group(1)

    assert "有効期限" in desk(expired.code) and "切れています" in desk(expired.code.lower())
    assert "見つかりません" in desk("ZZZZ-ZZZZ")
    assert "8文字" in desk("ABC")
    closing = running_coupon(clinic, title="物販 サプリ10%オフ", purpose="goods", service="サプリメント")
    closed = ticket_for(clinic, closing, patients[1])
    with tenant_scope(clinic.id):
        services.close(db.session.get(Coupon, closing.id))
    assert "配布を終了" in desk(closed.code)
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(sa.func.count(CouponRedemption.id))) == 0
        assert db.session.get(CouponTicket, expired.id).used_count == 0


def test_another_clinics_coupon_is_refused_at_the_desk_and_its_pages_are_404(staff, clinic, sandbox, live_server):
    mine, _, _ = clinic
    theirs, _, their_patients = coupon_clinic(sandbox, live_server, name="よその皮膚科")
    their_coupon = running_coupon(theirs)
    their_ticket = ticket_for(theirs, their_coupon, their_patients[0])
    answer = staff.post(
        f"/c/{mine.slug}/coupons/desk", data={"csrf_token": csrf_token(staff), "code": their_ticket.code}
    )
    assert answer.status_code == 409 and "他の医療機関のもの" in answer.get_data(as_text=True)
    for path in (f"/{their_coupon.id}", f"/{their_coupon.id}/edit"):
        assert staff.get(f"/c/{mine.slug}/coupons{path}").status_code == 404
    assert (
        staff.post(
            f"/c/{mine.slug}/coupons/{their_coupon.id}/close", data={"csrf_token": csrf_token(staff)}
        ).status_code
        == 404
    )
    with tenant_scope(theirs.id):
        assert db.session.get(Coupon, their_coupon.id).status == CouponStatus.RUNNING
        assert db.session.get(CouponTicket, their_ticket.id).used_count == 0


def test_coupon_rows_are_isolated_between_clinics(clinic, sandbox, live_server):
    a, _, a_patients = clinic
    b, _, b_patients = coupon_clinic(sandbox, live_server, name="別院")
    a_coupon, b_coupon = running_coupon(a), running_coupon(b)
    ticket_for(a, a_coupon, a_patients[0]), ticket_for(b, b_coupon, b_patients[0])
    with tenant_scope(a.id):
        row_a = db.session.get(Coupon, a_coupon.id)
    with tenant_scope(b.id):
        row_b = db.session.get(Coupon, b_coupon.id)
    assert_rows_isolated(Coupon, row_a, row_b)
    with tenant_scope(a.id):
        ticket_a = db.session.scalars(sa.select(CouponTicket)).one()
    with tenant_scope(b.id):
        ticket_b = db.session.scalars(sa.select(CouponTicket)).one()
    assert_rows_isolated(CouponTicket, ticket_a, ticket_b)


def test_a_patient_outside_the_segment_gets_no_ticket_from_a_forwarded_link(clinic):
    clinic, _, patients = clinic
    from saas.friends import services as friends
    from saas.friends.models import Friend

    with tenant_scope(clinic.id):
        tag = friends.get_or_create_tag("美容")
        friend = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == patients[0]))
        friends.add_tag(friend, tag)
        db.session.commit()
        coupon = services.save(Coupon(clinic_id=clinic.id), values(target="segment", segment={"tag_ids": [tag.id]}))
        db.session.commit()
        services.publish(coupon)
        outsider = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == patients[1]))
        assert services.reaches(coupon, friend) and not services.reaches(coupon, outsider)
    page = Phone(patients[1]).open(services_url(clinic, coupon))
    assert page.status_code == 403 and "対象の方にだけ" in page.text


def services_url(clinic, coupon) -> str:
    with tenant_scope(clinic.id):
        return services.patient_url(db.session.get(Coupon, coupon.id))


def test_redeeming_a_coupon_reaches_a_scenarios_goal_and_stops_it_for_that_patient(clinic):
    from saas.friends.models import Friend
    from saas.steps import triggers
    from tests.steps.support import enrolment, scenario

    clinic, _, patients = clinic
    coupon = running_coupon(clinic)
    other = running_coupon(clinic, title="物販 サプリ10%オフ", purpose="goods", service="サプリメント")
    step = {
        "delay_value": 3,
        "delay_unit": "days",
        "messages": [{"type": "text", "text": "クーポンはお使いいただけましたか"}],
    }
    aims = scenario(clinic, "クーポン利用まで", [step], goals=[{"kind": "coupon_used", "coupon_id": coupon.id}])
    with tenant_scope(clinic.id):
        from saas.steps.models import StepScenario

        friend = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == patients[0]))
        triggers.start(friend, db.session.get(StepScenario, aims))
        db.session.commit()
    with tenant_scope(clinic.id):
        redemption.redeem(ticket_for(clinic, other, patients[0]).code)
    assert enrolment(clinic, aims, patients[0]).status == "active"  # another coupon is not the goal
    with tenant_scope(clinic.id):
        redemption.redeem(ticket_for(clinic, coupon, patients[0]).code)
    stopped = enrolment(clinic, aims, patients[0])
    assert (stopped.status, stopped.stop_reason) == ("stopped", "goal")


def test_a_coupon_send_while_billing_pauses_marketing_is_refused_with_the_reason(staff, clinic, monkeypatch):
    from saas import billing
    from saas.delivery.models import Delivery

    clinic, _, _ = clinic
    coupon = running_coupon(clinic)
    monkeypatch.setattr(billing, "allows_marketing", lambda clinic: False)
    answer = staff.post(f"/c/{clinic.slug}/coupons/{coupon.id}/send", data={"csrf_token": csrf_token(staff)})
    assert answer.status_code == 302 and answer.headers["Location"].endswith(f"/coupons/{coupon.id}")
    assert "一時停止中" in staff.get(answer.headers["Location"]).get_data(as_text=True)
    with tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(Delivery)).one().status == "refused"


def test_a_coupon_text_with_a_block_finding_needs_an_admins_approval(staff, clinic, client):
    mine = clinic[0]
    form = _form(staff, clinic, title="地域No.1の人間ドック 3,000円引き")
    refused = staff.post(f"/c/{mine.slug}/coupons/", data=form)
    assert refused.status_code == 400 and 'data-testid="adcheck-gate"' in refused.get_data(as_text=True)
    assert _coupons(mine) == []
    admin = client.application.test_client()
    login(admin, gen_user("admin", clinic=mine))
    approved = admin.post(
        f"/c/{mine.slug}/coupons/", data=form | {"csrf_token": csrf_token(admin), "adcheck_approve": "1"}
    )
    assert approved.status_code == 302 and [c.title for c in _coupons(mine)] == ["地域No.1の人間ドック 3,000円引き"]


def test_a_coupon_send_above_the_guards_threshold_waits_for_a_second_staff_member(staff, clinic, sandbox):
    from saas.delivery.models import Delivery
    from saas.sendguard import guard

    clinic, channel, patients = clinic
    coupon = running_coupon(clinic)
    with tenant_scope(clinic.id):
        guard.settings_for(clinic.id).approval_threshold = 1
        db.session.commit()
    held = staff.post(f"/c/{clinic.slug}/coupons/{coupon.id}/send", data={"csrf_token": csrf_token(staff)})
    assert "/approvals/" in held.headers["Location"]
    drain()
    assert [m for m in sandbox.inbox(channel, patients[0]) if m["message"]["type"] == "coupon"] == []
    with tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(Delivery)).one().status == "pending_approval"
