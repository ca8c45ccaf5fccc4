"""The demo, as `flask demo` loads it, with a day of activity: patients on LINE (sandbox),
bot and staff answers, deliveries, a closure, a booking and a rich menu.

Used by the tests that read the portal as a receptionist does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

import sqlalchemy as sa

from saas import demo as demo_data
from saas.auth import services as auth_services
from saas.auth.models import User
from saas.autoreply.models import AutoReplyRule
from saas.booking import services as booking
from saas.booking.models import BookingMode
from saas.common import utcnow
from saas.config import ROOT
from saas.delivery import services as deliveries
from saas.delivery.models import DeliveryKind
from saas.extensions import db
from saas.friends import services as friends
from saas.friends.models import Friend, Message
from saas.inbox import sending
from saas.manifests.apply import apply_file, manifest_files
from saas.richmenu.layouts import preset_areas
from saas.richmenu.models import RichMenu
from saas.schedule.models import Closure, ClosureKind
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.webhooks.support import run_jobs, webhook_url

PATIENTS = ["山田 花子", "佐藤 健太", "鈴木 美咲", "高橋 大輔"]


@dataclass
class DemoPortal:
    clinic: Clinic
    channel_id: str
    users: dict[str, User]
    patients: dict[str, str] = field(default_factory=dict)  # name → LINE user id
    ids: dict[str, list] = field(default_factory=dict)  # URL argument → values to walk


def _load_manifests_and_staff() -> dict[str, User]:
    with platform_scope("test: demo manifests"):
        for path in manifest_files(ROOT / "tenants"):
            apply_file(path)
        db.session.commit()
        users = demo_data.load_staff()
        for user in users:
            if user.needs_two_factor:  # as if each had enrolled at first login
                auth_services.start_totp_enrolment(user)
                user.totp_enabled_at = utcnow()
        db.session.commit()
    return {user.email: user for user in users}


def _connect(sandbox, live_server, clinic: Clinic) -> str:
    channel_id = str(2100000000 + clinic.id)
    clinic.line_channel_id, clinic.line_channel_secret = channel_id, "d" * 32
    clinic.line_access_token = f"demo-token-{clinic.id}-" + "t" * 30
    channel = sandbox.add_channel(
        channel_id, clinic.line_channel_secret, clinic.line_access_token, webhook_url=webhook_url(live_server, clinic)
    )
    clinic.line_bot_user_id = channel.get("botUserId")
    db.session.commit()
    return channel_id


def _patients_write(sandbox, demo: DemoPortal) -> None:
    for name in PATIENTS:
        user_id = sandbox.add_patient(demo.channel_id, name)
        sandbox.follow(demo.channel_id, user_id)
        demo.patients[name] = user_id
    run_jobs()
    sandbox.send_text(demo.channel_id, demo.patients["佐藤 健太"], "駐車場はありますか")
    sandbox.send_text(demo.channel_id, demo.patients["鈴木 美咲"], "薬の飲み方について相談したいです")
    sandbox.send_text(demo.channel_id, demo.patients["高橋 大輔"], "スタッフと話したい")
    run_jobs()


def _friend(demo: DemoPortal, name: str) -> Friend:
    return db.session.scalar(sa.select(Friend).where(Friend.line_user_id == demo.patients[name]))


def _staff_answers(demo: DemoPortal) -> None:
    owner = demo.users["owner@sakura.example"]
    friend = _friend(demo, "鈴木 美咲")
    sending.send_text(demo.clinic, friend, "お薬の飲み方は、次回の診察でご説明します。", owner)
    db.session.commit()


def _deliveries(demo: DemoPortal) -> list[int]:
    sender = demo.users["sender@sakura.example"]
    tag = friends.get_or_create_tag("インフルエンザ予防接種")
    friends.add_tag(_friend(demo, "山田 花子"), tag)
    db.session.commit()
    text = [{"type": "text", "text": "{{friend.display_name}}さま、インフルエンザ予防接種の予約を受け付けています。"}]
    sent = deliveries.create_delivery(messages=text, actor=sender)
    segment = deliveries.create_delivery(
        messages=text, kind=DeliveryKind.SEGMENT, segment={"tag_ids": [tag.id], "tag_match": "any"}, actor=sender
    )
    later = deliveries.create_delivery(
        messages=[{"type": "text", "text": "年末年始の診療のお知らせです。"}],
        scheduled_at=utcnow() + timedelta(days=3),
        actor=sender,
    )
    db.session.commit()
    for delivery in (sent, segment, later):
        deliveries.submit(delivery)
    run_jobs()
    return [sent.id, segment.id, later.id]


def _enable_booking(sandbox, demo: DemoPortal) -> None:
    settings = booking.get_settings(demo.clinic.id)
    settings.mode = BookingMode.NATIVE
    settings.login_channel_id, settings.login_channel_secret = str(1700000000 + demo.clinic.id), "l" * 32
    db.session.commit()
    sandbox.add_login_channel(settings.login_channel_id, settings.login_channel_secret, bot_channel_id=demo.channel_id)


def _closure_booking_and_menu(demo: DemoPortal) -> dict[str, list]:
    today = utcnow().date()
    day = today + timedelta(days=7)
    closure = Closure(kind=ClosureKind.CLOSED, starts_on=day, ends_on=day, reason="院内研修のため")
    menu_size, areas = preset_areas("full6")
    menu = RichMenu(name="基本メニュー", size=menu_size, areas=areas, is_default=True)
    db.session.add_all([closure, menu])
    db.session.commit()
    slot = booking.open_slots(demo.clinic, today + timedelta(days=1), today + timedelta(days=14))[0]
    booking.book(
        demo.clinic, line_user_id=demo.patients["山田 花子"], patient_name="山田 花子", starts_at=slot.starts_at
    )
    db.session.commit()
    return {"closure_id": [closure.id], "menu_id": [menu.id]}


def _form_answer_and_visit(demo: DemoPortal) -> dict[str, list]:
    """山田 花子 answered the demo's vaccination form and visited last week."""
    from saas.forms import services as forms
    from saas.visits import services as visits

    friend = _friend(demo, "山田 花子")
    form = forms.all_forms()[0]
    values = {"q1": ["インフルエンザ"], "q2": "40代", "q3": "花粉症の薬", "q4": True}
    answer = forms.submit(form, friend, values)
    visits.record(friend.id, friend.clinic_id, (utcnow() - timedelta(days=7)).date(), "desk")
    db.session.commit()
    return {"form_id": [form.id], "answer_id": [answer.id]}


def build_demo(sandbox, live_server) -> DemoPortal:
    """The demo tenants with さくら内科 渋谷院 on the sandbox and some activity in it."""
    users = _load_manifests_and_staff()
    clinic = db.session.scalar(sa.select(Clinic).where(Clinic.slug == "sakura-shibuya"))
    demo = DemoPortal(clinic=clinic, channel_id=_connect(sandbox, live_server, clinic), users=users)
    _patients_write(sandbox, demo)
    with tenant_scope(clinic.id):
        _staff_answers(demo)
        demo.ids["delivery_id"] = _deliveries(demo)
        _enable_booking(sandbox, demo)
        demo.ids.update(_closure_booking_and_menu(demo))
        demo.ids["friend_id"] = [_friend(demo, name).id for name in PATIENTS]
        demo.ids.update(_form_answer_and_visit(demo))
        demo.ids["rule_id"] = list(db.session.scalars(sa.select(AutoReplyRule.id)))
        demo.ids["message_id"] = [db.session.scalar(sa.select(sa.func.max(Message.id)))]
    return demo
