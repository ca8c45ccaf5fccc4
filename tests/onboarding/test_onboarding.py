"""Onboarding in the portal: from nothing to a clinic whose greeting a sandbox patient receives, the
dry-run diff before a manifest is applied, the profile page (both ways with the manifest), logo
checks and the LINE plan."""

from __future__ import annotations

import io
import re
import secrets

import sqlalchemy as sa
from PIL import Image

from saas.extensions import db
from saas.manifests.export import manifest_for
from saas.quota.plans import plan_for_clinic
from saas.tenancy.models import Clinic
from saas.tenancy.scoping import tenant_scope
from tests.conftest import csrf_token
from tests.delivery.support import drain
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user
from tests.helpers import login


def _agency_admin():
    agency = gen_agency()
    organization = gen_organization(agency)
    return organization, gen_user("admin", agency=agency)


def _png(size=(64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "white").save(buffer, "PNG")
    return buffer.getvalue()


def test_the_wizard_takes_a_clinic_from_nothing_to_greeting_a_patient(client, sandbox, live_server):
    organization, admin = _agency_admin()
    login(client, admin)
    created = client.post(
        "/onboarding/new",
        data={
            "organization_id": organization.id,
            "name": "みらい皮膚科 恵比寿院",
            "slug": "mirai-ebisu",
            "csrf_token": csrf_token(client),
        },
    )
    assert created.status_code == 302 and created.headers["Location"].endswith("/c/mirai-ebisu/onboarding")
    steps = client.get("/c/mirai-ebisu/onboarding").get_data(as_text=True)
    assert 'data-step="line" data-done="no"' in steps and 'data-step="greeting" data-done="no"' in steps

    token = "tok-" + secrets.token_hex(16)
    sandbox.add_channel("2001000001", "e" * 32, token, plan="standard")
    connected = client.post(
        "/c/mirai-ebisu/settings/line",
        data={
            "channel_id": "2001000001",
            "channel_secret": "e" * 32,
            "access_token": token,
            "csrf_token": csrf_token(client),
        },
    )
    assert connected.status_code == 200 and "連携しました" in connected.get_data(as_text=True)

    preview = client.post(
        "/c/mirai-ebisu/onboarding/manifest",
        data={"starter": "naika", "action": "preview", "csrf_token": csrf_token(client)},
    )
    assert "autoreply.greeting_messages を更新" in preview.get_data(as_text=True)
    with tenant_scope(db.session.scalar(sa.select(Clinic.id).where(Clinic.slug == "mirai-ebisu"))):
        assert (
            manifest_for(db.session.scalars(sa.select(Clinic)).one()).clinics[0].autoreply.greeting == []
        )  # nothing applied yet
    db.session.rollback()
    applied = client.post(
        "/c/mirai-ebisu/onboarding/manifest",
        data={"starter": "naika", "action": "apply", "csrf_token": csrf_token(client)},
    )
    assert applied.status_code == 302

    patient = sandbox.add_patient("2001000001", "新規 患者")
    sandbox.follow("2001000001", patient)
    drain()
    texts = [entry["message"].get("text", "") for entry in sandbox.inbox("2001000001", patient)]
    assert any(text.startswith("みらい皮膚科 恵比寿院です。友だち追加ありがとうございます") for text in texts)
    steps = client.get("/c/mirai-ebisu/onboarding").get_data(as_text=True)
    for key in ("line", "greeting", "schedule", "faq"):
        assert f'data-step="{key}" data-done="yes"' in steps


def test_a_broken_yaml_upload_names_the_field_and_changes_nothing(client):
    organization, admin = _agency_admin()
    clinic = gen_clinic(organization)
    login(client, admin)
    response = client.post(
        f"/c/{clinic.slug}/onboarding/manifest",
        data={
            "yaml": "schedule:\n  weekly:\n    mon: [{start: '25:00', end: '12:00'}]\n",
            "action": "apply",
            "csrf_token": csrf_token(client),
        },
    )
    assert response.status_code == 422 and "schedule.weekly.mon[0].start" in response.get_data(as_text=True)


def test_manifest_errors_are_told_in_japanese_with_file_field_and_reason(client):
    organization, admin = _agency_admin()
    clinic = gen_clinic(organization)
    login(client, admin)
    yaml_text = "profile:\n  phone: [1, 2]\nschedule:\n  slot_minutes: たくさん\n  weekly:\n    mon: [{end: '12:00'}]\n"
    response = client.post(
        f"/c/{clinic.slug}/onboarding/manifest",
        data={"yaml": yaml_text, "action": "preview", "csrf_token": csrf_token(client)},
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "マニフェストに誤りがあります。何も変更していません。" in page
    rows = re.findall(r"<tr><td>(.*?)</td><td><code>(.*?)</code></td><td[^>]*>(.*?)</td></tr>", page)
    reasons = {path: reason for _, path, reason in rows}
    assert {file for file, _, _ in rows} == {"貼り付けたYAML"}
    assert reasons["profile.phone"].startswith("文字列で書いてください（Input should be a valid string）")
    assert reasons["schedule.weekly.mon[0].start"] == "必須の項目です（Field required）"
    assert "Input should" not in page.replace("（Input should", "")  # English only after the Japanese

    broken = client.post(
        f"/c/{clinic.slug}/onboarding/manifest",
        data={"yaml": "profile:\n  phone: '03'\n bad: x\n", "action": "preview", "csrf_token": csrf_token(client)},
    ).get_data(as_text=True)
    assert "3行目" in broken and "YAMLとして読めません" in broken


def test_the_profile_page_and_the_manifest_carry_the_same_fields(client):
    organization, admin = _agency_admin()
    clinic = gen_clinic(organization)
    login(client, admin)
    saved = client.post(
        f"/c/{clinic.slug}/profile",
        data={"name": clinic.name, "phone": "03-5555-0000", "address": "東京都渋谷区1-2-3", "parking": "提携駐車場あり",
              "access": "渋谷駅から徒歩3分", "csrf_token": csrf_token(client)},
    )  # fmt: skip
    assert saved.status_code == 302
    db.session.expire_all()
    with tenant_scope(clinic.id):
        profile = manifest_for(db.session.get(Clinic, clinic.id)).clinics[0].profile
        db.session.rollback()
    assert (profile.phone, profile.parking, profile.access) == ("03-5555-0000", "提携駐車場あり", "渋谷駅から徒歩3分")
    page = client.get(f"/c/{clinic.slug}/profile").get_data(as_text=True)
    assert 'value="03-5555-0000"' in page and 'id="hours"' in page


def test_logo_uploads_are_checked_by_content_and_size(client):
    organization, admin = _agency_admin()
    clinic = gen_clinic(organization)
    login(client, admin)

    def upload(data: bytes, filename: str):
        form = {"name": clinic.name, "csrf_token": csrf_token(client), "logo": (io.BytesIO(data), filename)}
        return client.post(f"/c/{clinic.slug}/profile", data=form, content_type="multipart/form-data")

    assert upload(b"<svg onload=alert(1)>", "logo.png").status_code == 422
    assert upload(_png((3000, 10)), "wide.png").status_code == 422
    assert upload(_png(), "logo.png").status_code == 302
    db.session.expire_all()
    logo_url = db.session.get(Clinic, clinic.id).logo_url
    served = client.get(logo_url.split("://", 1)[1].split("/", 1)[1].join(["/", ""]))
    assert served.status_code == 200 and served.mimetype == "image/png"


def test_the_line_plan_is_set_in_the_portal(client):
    organization, admin = _agency_admin()
    clinic = gen_clinic(organization)
    login(client, admin)
    client.post(
        f"/c/{clinic.slug}/plan",
        data={"plan_code": "standard", "extra_allowed": "1", "extra_cap": "1000", "csrf_token": csrf_token(client)},
    )
    refused = client.post(
        f"/c/{clinic.slug}/plan", data={"plan_code": "light", "extra_allowed": "1", "csrf_token": csrf_token(client)}
    )
    assert refused.status_code == 422 and "確認してください" in refused.get_data(as_text=True)
    with tenant_scope(clinic.id):
        plan = plan_for_clinic(clinic.id)
    assert (plan.plan.code, plan.limit) == ("standard", 31_000)


def test_staff_of_a_clinic_cannot_create_clinics(client):
    clinic = gen_clinic()
    login(client, gen_user("owner", clinic=clinic))
    assert client.get("/onboarding/new").status_code == 404
