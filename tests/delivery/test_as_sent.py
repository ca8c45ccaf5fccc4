"""A delivery is shown as it was sent: its {{clinic.*}} variables with the values of the send,
not today's (a clinic renamed after the send), in the portal and in the API."""

from __future__ import annotations

from saas.extensions import db
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import platform_scope
from tests.api.support import bearer, make_key
from tests.delivery.support import add_friends, connected_clinic, drain
from tests.factories import gen_user
from tests.helpers import login

NOTICE = {"kind": "broadcast", "messages": [{"type": "text", "text": "{{clinic.name}}です。年末年始の診療のお知らせ"}]}
PERSONAL = [{"type": "text", "text": "{{friend.display_name}}さま、{{clinic.name}}です"}]


def rename(clinic, name: str) -> None:
    with platform_scope("test: the clinic renames itself"):
        db.session.get(Clinic, clinic.id).name = name
        db.session.commit()


def test_the_api_and_the_portal_show_the_clinic_name_the_delivery_went_out_with(client, sandbox):
    clinic = connected_clinic(sandbox, "1810000001", name="さくら内科")
    add_friends(sandbox, clinic, 2)
    token, url = make_key("sender", clinic=clinic), f"/api/v1/clinics/{clinic.slug}/deliveries"
    created = client.post(url, json=NOTICE, headers={**bearer(token), "Idempotency-Key": "k1"})
    sent_name = clinic.name
    assert created.status_code == 202 and created.json["title"].startswith(f"{sent_name}です")  # as it will go out
    drain()
    rename(clinic, "さくら内科クリニック 新宿院")

    shown = client.get(f"{url}/{created.json['id']}", headers=bearer(token)).json
    assert shown["title"].startswith(f"{sent_name}です") and "{{" not in shown["title"]
    listed = client.get(url, headers=bearer(token)).json["data"]
    assert listed[0]["title"] == shown["title"]

    login(client, gen_user("sender", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/deliveries/{created.json['id']}").get_data(as_text=True)
    assert f"{sent_name}です。年末年始" in page and "新宿院です" not in page
    history = client.get(f"/c/{clinic.slug}/deliveries").get_data(as_text=True)
    assert f"{sent_name}です。年末年始" in history and "［医院名］" not in history


def test_a_personalised_delivery_keeps_the_sent_clinic_name_and_a_sample_patient(client, sandbox):
    from saas.delivery import services
    from saas.tenancy.scoping import tenant_scope

    clinic = connected_clinic(sandbox, "1810000002", name="あおば皮フ科")
    add_friends(sandbox, clinic, 2)
    sent_name = clinic.name
    with tenant_scope(clinic.id):
        delivery = services.create_delivery(messages=PERSONAL, title="{{clinic.name}}から{{friend.display_name}}さまへ")
        services.submit(delivery)
        delivery_id = delivery.id
    drain()
    rename(clinic, "あおば皮フ科 駅前院")
    login(client, gen_user("sender", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/deliveries/{delivery_id}").get_data(as_text=True)
    assert f"さま、{sent_name}です" in page and "駅前院です" not in page
    assert f"{sent_name}から［友だちの表示名］さまへ" in page  # the title: per-friend variables in words


def test_a_scheduled_delivery_shows_the_clinic_as_it_is_until_it_goes_out(client, sandbox):
    from datetime import timedelta

    from saas.common import utcnow
    from saas.delivery import services
    from saas.tenancy.scoping import tenant_scope

    clinic = connected_clinic(sandbox, "1810000003", name="ひかり健診")
    with tenant_scope(clinic.id):
        delivery = services.create_delivery(messages=NOTICE["messages"], scheduled_at=utcnow() + timedelta(days=2))
        services.submit(delivery)
        delivery_id = delivery.id
    rename(clinic, "ひかり健診センター")
    login(client, gen_user("sender", clinic=clinic))
    page = client.get(f"/c/{clinic.slug}/deliveries/{delivery_id}").get_data(as_text=True)
    assert "ひかり健診センターです。年末年始" in page
