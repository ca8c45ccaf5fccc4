"""Two-factor in a real browser: the enrolment QR code renders as an image, recovery codes are
shown once, and one of them signs in when the phone is lost (issue 19)."""

from __future__ import annotations

import pyotp

from tests.browser_fixtures import sign_in
from tests.factories import gen_clinic, gen_user


def test_enrolment_shows_the_qr_code_and_a_recovery_code_signs_in(page):
    clinic = gen_clinic(name="みどり皮膚科")
    user = gen_user("admin", clinic=clinic, two_factor=False)
    sign_in(page, user, two_factor=False)
    page.wait_for_url("**/auth/two-factor/enrol")
    qr = page.locator("img[alt='二要素認証用QRコード']")
    qr.wait_for()
    assert page.evaluate("img => img.complete && img.naturalWidth > 0", qr.element_handle())  # decoded, not broken
    secret = page.get_by_test_id("totp-secret").inner_text().strip()
    page.get_by_label("確認コード（6桁）").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="設定を完了する").click()
    codes = page.get_by_test_id("recovery-codes").locator("code").all_inner_texts()
    assert len(codes) == 10
    page.get_by_role("link", name="保管しました。続ける").click()
    page.wait_for_url(f"**/c/{clinic.slug}/")
    page.get_by_role("button", name="ログアウト").click()
    page.wait_for_url("**/auth/login")

    sign_in(page, user, two_factor=False)  # the phone is lost: a recovery code instead of the authenticator
    page.wait_for_url("**/auth/two-factor")
    page.get_by_label("確認コード（6桁）").fill(codes[0])
    page.get_by_role("button", name="確認").click()
    page.wait_for_url(f"**/c/{clinic.slug}/")
    assert page.get_by_text("リカバリーコードでログインしました。残り9個です。").is_visible()
