"""Main portal flows in a real browser: sign in with TOTP, switch clinics, be refused others."""

from __future__ import annotations

import pyotp
import sqlalchemy as sa

from saas.auth.models import User
from saas.extensions import db
from tests.browser_fixtures import sign_in
from tests.factories import gen_agency, gen_clinic, gen_organization, gen_user, totp_code


def test_responder_enrols_totp_then_reaches_the_clinic_dashboard(page):
    clinic = gen_clinic(name="さくら内科")
    user = gen_user("responder", clinic=clinic, two_factor=False)
    sign_in(page, user, two_factor=False)
    page.wait_for_url("**/auth/two-factor/enrol")
    assert page.locator("img[alt='二要素認証用QRコード']").is_visible()
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    page.get_by_label("確認コード（6桁）").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="設定を完了する").click()
    page.get_by_role("link", name="保管しました。続ける").click()  # after the recovery codes
    page.wait_for_url(f"**/c/{clinic.slug}/")
    assert page.get_by_role("heading", name=clinic.name).is_visible()
    db.session.expire_all()
    assert db.session.scalars(sa.select(User).where(User.id == user.id)).one().has_two_factor


def test_organization_admin_switches_between_branches(page):
    corporation = gen_organization(gen_agency(), name="医療法人さくら会")
    first, second = gen_clinic(corporation, name="渋谷院"), gen_clinic(corporation, name="新宿院")
    user = gen_user("admin", organization=corporation)
    sign_in(page, user, two_factor=False)
    page.wait_for_url("**/auth/two-factor")
    page.get_by_label("確認コード（6桁）").fill(totp_code(user))
    page.get_by_role("button", name="確認").click()
    page.wait_for_url("**/")
    assert page.locator(f"[data-clinic='{first.slug}']").is_visible()
    assert page.locator(f"[data-clinic='{second.slug}']").is_visible()
    page.locator(f"[data-clinic='{first.slug}']").click()
    page.wait_for_url(f"**/c/{first.slug}/")
    page.select_option("#clinic-switcher", second.slug)
    page.wait_for_url(f"**/c/{second.slug}/")
    assert page.get_by_role("heading", name=second.name).is_visible()


def test_staff_is_refused_a_clinic_they_do_not_belong_to(page):
    mine, theirs = gen_clinic(name="自院"), gen_clinic(name="他院")
    user = gen_user("sender", clinic=mine)
    sign_in(page, user, two_factor=False)
    page.wait_for_url(f"**/c/{mine.slug}/")
    options = page.locator("#clinic-switcher option").all_inner_texts()
    assert mine.name in options and theirs.name not in options
    response = page.goto(f"/c/{theirs.slug}/")
    assert response.status == 404
    assert page.get_by_role("heading", name="ページが見つかりません").is_visible()
