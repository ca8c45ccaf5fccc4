"""Shop cards through the sandbox: the desk's rotating QR stamps once a day, replays and old or
foreign QRs are refused, a reward coupon reaches the patient's LINE at the threshold."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from urllib.parse import parse_qs, urljoin, urlparse

import pytest
import sqlalchemy as sa

from saas.audit.models import AuditEvent
from saas.cards import services, tokens
from saas.cards.models import CardSettings, CardStamp, PointCard
from saas.coupons.models import Coupon, CouponTicket
from saas.extensions import db
from saas.friends.models import Friend
from saas.schedule.services import clinic_now
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import tenant_scope
from tests.conftest import csrf_token
from tests.coupons.support import Phone, coupon_clinic, friend_of, running_coupon
from tests.delivery.support import drain
from tests.factories import gen_user
from tests.helpers import assert_rows_isolated, login


def _enable(clinic, *, threshold: int = 2) -> Coupon:
    reward = running_coupon(clinic, title="物販 ハンドクリーム進呈", purpose="goods", service="ハンドクリーム",
                            reward_kind="gift", reward_value=0, target="reward")  # fmt: skip
    with tenant_scope(clinic.id):
        settings = services.get_settings(clinic.id)
        settings.enabled = True
        services.save_settings(settings, [services.RewardSpec(threshold, reward.id)])
    return reward


@pytest.fixture
def clinic(sandbox, live_server):
    clinic, channel, patients = coupon_clinic(sandbox, live_server)
    return clinic, channel, patients, _enable(clinic)


@pytest.fixture
def desk(client, clinic):
    login(client, gen_user("responder", clinic=clinic[0]))
    return client


def _desk_url(desk, clinic) -> str:
    page = desk.get(f"/c/{clinic.slug}/cards/desk").get_data(as_text=True)
    return re.search(r'data-url="([^"]+)"', page).group(1).replace("&amp;", "&")


def _stamps(clinic) -> list[CardStamp]:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return list(db.session.scalars(sa.select(CardStamp)))


def _visited_yesterday(clinic, user_id: str) -> None:
    """A stamp from yesterday's visit, as the desk would have made it."""
    with tenant_scope(clinic.id):
        friend = db.session.get(Friend, friend_of(clinic, user_id).id)
        card = services.card_for(friend)
        yesterday = clinic_now(clinic).date() - timedelta(days=1)
        db.session.add(CardStamp(clinic_id=clinic.id, card_id=card.id, friend_id=friend.id, visit_day=yesterday,
                                 points=1, method="desk_qr"))  # fmt: skip
        card.points, card.stamps_total, card.last_stamp_on = 1, 1, yesterday
        db.session.commit()


def test_the_desk_qr_stamps_once_a_day_and_a_replay_is_refused(desk, clinic):
    clinic, _, patients, _ = clinic
    url = _desk_url(desk, clinic)
    assert url.startswith("http://127.0.0.1") and f"/book/{clinic.slug}/card/stamp?t=desk.{clinic.id}." in url
    phone = Phone(patients[0])
    first = phone.open(url)
    assert first.status_code == 200 and "スタンプを押しました" in first.text and "1ポイント" in first.text
    replay = phone.open(url)
    assert replay.status_code == 409 and "本日のスタンプはすでに押してあります" in replay.text
    assert [s.method for s in _stamps(clinic)] == ["desk_qr"]
    with tenant_scope(clinic.id):
        assert (
            db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "card.stamped")).details["points"] == 1
        )
        from saas.visits.models import Visit

        assert db.session.scalars(sa.select(Visit.source)).all() == ["card"]  # the stamp joins the visit history


def test_the_reward_coupon_is_issued_at_the_threshold_and_arrives_in_line(desk, clinic, sandbox):
    clinic, channel, patients, reward = clinic
    _visited_yesterday(clinic, patients[0])
    page = Phone(patients[0]).open(_desk_url(desk, clinic))
    assert "特典のクーポン「物販 ハンドクリーム進呈」" in page.text
    drain()
    inbox = sandbox.inbox(channel, patients[0])
    assert "ポイントが貯まりました" in inbox[-3]["message"]["text"]
    assert inbox[-2]["message"] == {"type": "coupon", "couponId": reward.line_coupon_id}
    with tenant_scope(clinic.id):
        ticket = db.session.scalars(sa.select(CouponTicket)).one()
        card = db.session.scalars(sa.select(PointCard)).one()
        rewarded = db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "card.reward"))
    assert (ticket.origin, ticket.uses_allowed, ticket.friend_id) == ("reward", 1, friend_of(clinic, patients[0]).id)
    assert (card.points, card.rounds_completed, card.stamps_total) == (0, 1, 2)  # the card starts again
    assert rewarded.details["title"] == "物販 ハンドクリーム進呈"
    coupon_page = Phone(patients[0]).open(inbox[-1]["message"]["template"]["actions"][0]["uri"])
    assert "使えます" in coupon_page.text


def _token_url(url: str, token: str) -> str:
    return url.split("?")[0] + "?t=" + token


def test_an_old_a_tampered_and_another_clinics_qr_are_refused(desk, clinic, sandbox, live_server):
    clinic, _, patients, _ = clinic
    url = _desk_url(desk, clinic)
    with tenant_scope(clinic.id):
        key = services.get_settings(clinic.id).desk_key
    old = tokens.make("desk", clinic.id, key, now=time.time() - 45 - tokens.GRACE_SECONDS - 1)
    answer = Phone(patients[0]).open(_token_url(url, old))
    assert answer.status_code == 410 and "有効期限が切れました" in answer.text
    assert "<p>ショップカード</p>" in answer.text and "LINEクーポン" not in answer.text  # the card's page, titled so
    token = parse_qs(urlparse(url).query)["t"][0]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    assert "正しくありません" in Phone(patients[0]).open(_token_url(url, tampered)).text
    other, _, _ = coupon_clinic(sandbox, live_server, name="よそ")
    _enable(other)
    with tenant_scope(other.id):
        foreign = services.desk_token(db.session.get(Clinic, other.id))
    assert "他の医療機関" in Phone(patients[0]).open(_token_url(url, foreign)).text
    assert _stamps(clinic) == []


def test_a_qr_checked_before_login_is_not_usable_long_after(desk, clinic, monkeypatch):
    clinic, _, patients, _ = clinic
    url = _desk_url(desk, clinic)
    phone = Phone(patients[0])
    opened = phone.http.get(url, allow_redirects=False, timeout=10)
    assert opened.status_code == 302
    monkeypatch.setattr(services, "PENDING_LOGIN_SECONDS", -1)
    late = phone.open(urljoin(url, opened.headers["Location"]))
    assert late.status_code == 409 and "時間が経ったため" in late.text
    assert _stamps(clinic) == []


def test_staff_scan_the_patients_card_qr_to_stamp(desk, clinic):
    clinic, _, patients, _ = clinic
    card_page = Phone(patients[1]).open(f"{_desk_url(desk, clinic).split('/book')[0]}/book/{clinic.slug}/card/")
    assert card_page.status_code == 200 and "0ポイント" in card_page.text
    with tenant_scope(clinic.id):
        card = db.session.scalars(sa.select(PointCard)).one()
        token = services.card_token(card)
    done = desk.post(f"/c/{clinic.slug}/cards/desk/scan", data={"csrf_token": csrf_token(desk), "card": token})
    assert done.status_code == 303
    assert "スタンプを押しました" in desk.get(done.headers["Location"]).get_data(as_text=True)
    again = desk.post(f"/c/{clinic.slug}/cards/desk/scan", data={"csrf_token": csrf_token(desk), "card": token})
    assert "本日のスタンプはすでに" in desk.get(again.headers["Location"]).get_data(as_text=True)
    assert [s.method for s in _stamps(clinic)] == ["staff_scan"]


def test_points_lapse_after_the_expiry(clinic):
    clinic, _, patients, _ = clinic
    _visited_yesterday(clinic, patients[0])
    with tenant_scope(clinic.id):
        card = db.session.scalars(sa.select(PointCard)).one()
        card.expires_on = clinic_now(clinic).date() - timedelta(days=1)
        db.session.commit()
        stamped = services.stamp(db.session.get(Friend, card.friend_id), method="staff_scan")
        assert stamped.card.points == 1 and stamped.rewards == []
        assert (
            db.session.scalar(sa.select(AuditEvent).where(AuditEvent.action == "card.expired")).details["points"] == 1
        )


def test_card_settings_refuse_a_reward_coupon_not_meant_for_cards(desk, clinic):
    clinic, _, _, _ = clinic
    broadcast_coupon = running_coupon(
        clinic, title="健診 1,000円引き", purpose="checkup", service="特定健診以外の人間ドック"
    )
    form = {"csrf_token": csrf_token(desk), "enabled": "1", "points_per_visit": "1", "qr_seconds": "45",
            "reward_threshold": ["3"], "reward_coupon": [str(broadcast_coupon.id)]}  # fmt: skip
    answer = desk.post(f"/c/{clinic.slug}/cards/", data=form)
    assert answer.status_code == 403  # responders run the desk; settings are for coupon managers
    manager = desk.application.test_client()
    login(manager, gen_user("sender", clinic=clinic))
    form["csrf_token"] = csrf_token(manager)
    refused = manager.post(f"/c/{clinic.slug}/cards/", data=form)
    assert refused.status_code == 400 and "ショップカードの特典" in refused.get_data(as_text=True)


def test_card_rows_and_pages_are_isolated_between_clinics(desk, clinic, sandbox, live_server):
    mine, _, my_patients, _ = clinic
    other, _, their_patients = coupon_clinic(sandbox, live_server, name="別院")
    _enable(other)
    for each, user in ((mine, my_patients[0]), (other, their_patients[0])):
        with tenant_scope(each.id):
            services.stamp(db.session.get(Friend, friend_of(each, user).id), method="staff_scan")
    with tenant_scope(other.id):
        their_card = db.session.scalars(sa.select(PointCard)).one()
        their_token = services.card_token(their_card)
    answer = desk.post(f"/c/{mine.slug}/cards/desk/scan", data={"csrf_token": csrf_token(desk), "card": their_token})
    assert "他の医療機関" in desk.get(answer.headers["Location"]).get_data(as_text=True)
    with tenant_scope(mine.id):
        my_card = db.session.scalars(sa.select(PointCard)).one()
        my_stamp = db.session.scalars(sa.select(CardStamp)).one()
    with tenant_scope(other.id):
        their_stamp = db.session.scalars(sa.select(CardStamp)).one()
    assert_rows_isolated(PointCard, my_card, their_card)
    assert_rows_isolated(CardStamp, my_stamp, their_stamp)
    assert desk.get(f"/c/{other.slug}/cards/desk").status_code in (403, 404)


def test_two_stamps_at_the_same_moment_give_one(app, clinic):
    import threading

    clinic, _, patients, _ = clinic
    friend_id, barrier, outcomes = friend_of(clinic, patients[0]).id, threading.Barrier(2, timeout=20), []
    clinic_id = clinic.id
    with tenant_scope(clinic_id):
        services.card_for(db.session.get(Friend, friend_id))
        db.session.commit()

    def scan() -> None:
        with app.app_context(), tenant_scope(clinic_id):
            barrier.wait()
            try:
                services.stamp(db.session.get(Friend, friend_id), method="staff_scan")
                outcomes.append("stamped")
            except services.StampRefused as refused:
                outcomes.append(refused.kind)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=scan) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["already_today", "stamped"]
    with tenant_scope(clinic.id):
        assert db.session.scalars(sa.select(PointCard)).one().points == 1


def test_a_rich_menu_area_can_open_the_patients_card(clinic, live_server):
    from saas.richmenu import layouts
    from saas.richmenu.services import binding_values

    clinic = clinic[0]
    size, areas = layouts.preset_areas("full4", ["booking", "hours", "faq", "card"])
    assert areas[-1]["action"] == {"type": "uri", "uri": "{{clinic.card_url}}"}
    with tenant_scope(clinic.id):
        assert binding_values(db.session.get(Clinic, clinic.id))["clinic.card_url"] == (
            f"{live_server.url}/book/{clinic.slug}/card/"
        )
        services.get_settings(clinic.id).enabled = False
        assert binding_values(db.session.get(Clinic, clinic.id))["clinic.card_url"] == ""


def test_card_settings_take_numbers_typed_in_full_width_digits(clinic, client):
    clinic, _, _, _ = clinic
    login(client, gen_user("sender", clinic=clinic))
    form = {"csrf_token": csrf_token(client), "enabled": "0", "points_per_visit": "２", "qr_seconds": "６０",
            "expiry_days": "３６５"}  # fmt: skip
    assert client.post(f"/c/{clinic.slug}/cards/", data=form).status_code == 302
    with tenant_scope(clinic.id):
        settings = db.session.scalar(sa.select(CardSettings))
    assert (settings.points_per_visit, settings.qr_seconds, settings.expiry_days) == (2, 60, 365)
    form["points_per_visit"] = "²"
    refused = client.post(f"/c/{clinic.slug}/cards/", data=form)
    assert refused.status_code == 400 and "数字で入力してください" in refused.get_data(as_text=True)
