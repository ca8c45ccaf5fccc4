"""Inflow sources through the sandbox: scan a source's QR → LINE Login with the add-friend
prompt → follow → source recorded and its action run; visits of existing friends; figures;
the printable poster and card decode to the source's URL."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from PIL import Image

from saas.booking import services as booking
from saas.extensions import db
from saas.friends import services as friends
from saas.friends.models import Friend
from saas.richmenu import layouts
from saas.richmenu import services as richmenu
from saas.richmenu.models import RichMenu
from saas.sources import public, services
from saas.sources.models import InflowSource, SourceScan
from saas.tenancy.scoping import tenant_scope
from tests.booking.support import booking_clinic, tomorrow_at
from tests.conftest import csrf_token
from tests.factories import gen_user
from tests.helpers import login
from tests.webhooks.support import connect_clinic, run_jobs


def _source(clinic, name="受付ポスター", tags=(), menu_id=None) -> InflowSource:
    with tenant_scope(clinic.id):
        tag_ids = [friends.get_or_create_tag(tag).id for tag in tags]
        source = services.save_source(
            InflowSource(clinic_id=clinic.id), name=name, tag_ids=tag_ids, rich_menu_id=menu_id, poster_message=""
        )
        db.session.commit()
        url = public.tracked_url(source)
        db.session.expunge(source)
    source.url = url
    return source


def _sign_in(browser: requests.Session, url: str, user_id: str, *, add_friend: bool = True) -> str:
    """Open the tracked link and approve LINE Login as ``user_id``; the callback URL LINE sends back."""
    opened = browser.get(url, allow_redirects=False, timeout=10)
    assert opened.status_code == 302 and "/oauth2/v2.1/authorize" in opened.headers["Location"]
    assert "bot_prompt=aggressive" in opened.headers["Location"]
    approve = opened.headers["Location"] + f"&sandbox_user={user_id}" + ("" if add_friend else "&sandbox_add_friend=0")
    back = browser.get(approve, allow_redirects=False, timeout=10)
    assert back.status_code == 302
    return back.headers["Location"]


def _friend(clinic, user_id: str) -> Friend:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        friend = db.session.scalar(sa.select(Friend).where(Friend.line_user_id == user_id))
        return friend, [tag.name for tag in friend.tags] if friend else []


def _figures(clinic, source) -> services.SourceFigures:
    db.session.expire_all()
    with tenant_scope(clinic.id):
        return services.figures().get(source.id, services.SourceFigures())


def _deployed_menu(clinic) -> int:
    with tenant_scope(clinic.id):
        size, areas = layouts.preset_areas("half3", ["booking", "hours", "faq"])
        menu = RichMenu(clinic_id=clinic.id, name="健診", size=size, areas=areas)
        db.session.add(menu)
        db.session.commit()
        richmenu.deploy(clinic, menu)
        return menu.id, menu.line_rich_menu_id


@pytest.mark.parametrize("webhook_first", [False, True], ids=["callback-first", "webhook-first"])
def test_scanning_a_source_qr_and_adding_the_clinic_records_the_source_and_runs_its_action(
    sandbox, live_server, webhook_first
):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    with tenant_scope(clinic.id):
        booking.get_settings(clinic.id).mode = "native"
        db.session.commit()
    menu_id, line_menu_id = _deployed_menu(clinic)
    source = _source(clinic, tags=["健診ポスター"], menu_id=menu_id)
    patient = sandbox.add_patient(channel, "山田 花子")
    browser = requests.Session()

    callback = _sign_in(browser, source.url, patient)
    assert "friendship_status_changed=true" in callback
    if webhook_first:
        run_jobs()
    done = browser.get(callback, allow_redirects=False, timeout=10)
    assert done.status_code == 200 and "友だち追加ありがとうございます" in done.text
    run_jobs()

    friend, tags = _friend(clinic, patient)
    assert friend.is_following and friend.inflow_source_id == source.id
    assert tags == ["健診ポスター"]
    phone = requests.get(f"{sandbox.url}/_sandbox/channels/{channel}/patients/{patient}/richmenu", timeout=10).json()
    assert phone["richMenu"]["richMenuId"] == line_menu_id
    assert _figures(clinic, source) == services.SourceFigures(opened=1, friends_added=1)
    with tenant_scope(clinic.id):
        assert db.session.scalar(sa.select(SourceScan.outcome)) == "new_friend"


def test_an_existing_friend_who_scans_at_the_desk_is_recorded_as_a_visit_without_the_action(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    patient = sandbox.add_patient(channel, "佐藤 一郎")
    sandbox.follow(channel, patient)
    run_jobs()
    with tenant_scope(clinic.id):
        friend = db.session.scalar(sa.select(Friend))
        friend.followed_at = friend.followed_at - timedelta(days=30)  # a friend since last month
        db.session.commit()
    source = _source(clinic, name="受付カウンター", tags=["新規"])
    browser = requests.Session()
    callback = _sign_in(browser, source.url, patient)
    assert "friendship_status_changed=false" in callback
    page = browser.get(callback, allow_redirects=False, timeout=10)
    assert "ご来院ありがとうございます" in page.text
    friend, tags = _friend(clinic, patient)
    assert friend.inflow_source_id is None and tags == []
    assert _figures(clinic, source) == services.SourceFigures(opened=1, visits=1)


def test_a_patient_who_declines_the_prompt_is_sent_to_line_and_attributed_when_adding_later(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    clinic.line_basic_id = "@123tsunagu"  # stored by onboarding from the bot info
    db.session.commit()
    source = _source(clinic, name="ホームページ")
    patient = sandbox.add_patient(channel, "鈴木 次郎")
    browser = requests.Session()
    callback = _sign_in(browser, source.url, patient, add_friend=False)
    assert "friendship_status_changed=false" in callback
    answer = browser.get(callback, allow_redirects=False, timeout=10)
    assert answer.status_code == 302 and answer.headers["Location"] == "https://line.me/R/ti/p/%40123tsunagu"
    assert _friend(clinic, patient)[0] is None
    sandbox.follow(channel, patient)  # from LINE's own add-friend screen
    run_jobs()
    assert _friend(clinic, patient)[0].inflow_source_id == source.id


def test_per_source_figures_count_blocks_and_bookings_of_the_friends_it_brought(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    poster, card = _source(clinic, name="ポスター"), _source(clinic, name="診察券")
    stays, leaves = sandbox.add_patient(channel, "残る人"), sandbox.add_patient(channel, "去る人")
    for patient in (stays, leaves):
        browser = requests.Session()
        browser.get(_sign_in(browser, poster.url, patient), timeout=10)
    run_jobs()
    sandbox.unfollow(channel, leaves)
    run_jobs()
    with tenant_scope(clinic.id):
        booking.book(clinic, line_user_id=stays, patient_name="残る人", starts_at=tomorrow_at(clinic))
    assert _figures(clinic, poster) == services.SourceFigures(opened=2, friends_added=2, blocked=1, bookings=1)
    assert _figures(clinic, card) == services.SourceFigures()


def test_unknown_stopped_or_other_clinics_sources_answer_404(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    other, _other_channel = connect_clinic(sandbox, live_server, name="別クリニック")
    mine, theirs = _source(clinic), _source(other)
    assert requests.get(f"{live_server.url}/add/{clinic.slug}/nope", timeout=10).status_code == 404
    crossed = f"{live_server.url}/add/{clinic.slug}/{theirs.token}"
    assert requests.get(crossed, allow_redirects=False, timeout=10).status_code == 404
    with tenant_scope(clinic.id):
        db.session.get(InflowSource, mine.id).active = False
        db.session.commit()
    assert requests.get(mine.url, allow_redirects=False, timeout=10).status_code == 404


def test_a_forged_or_replayed_callback_binds_nobody(sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    source = _source(clinic, tags=["ポスター"])
    patient, attacker = sandbox.add_patient(channel, "本人"), sandbox.add_patient(channel, "攻撃者")
    browser = requests.Session()
    callback = _sign_in(browser, source.url, patient, add_friend=False)
    forged = callback.replace("state=", "state=x")
    assert browser.get(forged, allow_redirects=False, timeout=10).status_code == 400
    other_browser = requests.Session()
    assert other_browser.get(callback, allow_redirects=False, timeout=10).status_code == 400  # no flow in its session
    sandbox.follow(channel, attacker)
    run_jobs()
    assert _friend(clinic, attacker)[0].inflow_source_id is None


def _rendered_qr(pdf: bytes) -> tuple[list[str], tuple[int, int]]:
    import zxingcpp

    if shutil.which("pdftoppm") is None and not os.environ.get("CI"):
        pytest.skip("pdftoppm missing: apt-get install poppler-utils (CI installs it)")

    with tempfile.TemporaryDirectory() as folder:
        Path(folder, "in.pdf").write_bytes(pdf)
        subprocess.run(["pdftoppm", "-r", "150", "-png", "-singlefile", "in.pdf", "page"], cwd=folder, check=True)
        image = Image.open(io.BytesIO(Path(folder, "page.png").read_bytes()))
        image.load()
    return [found.text for found in zxingcpp.read_barcodes(image)], image.size


def test_the_a4_poster_and_the_card_render_and_their_qr_decodes_to_the_source_url(client, sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server, name="さくら内科クリニック")
    source = _source(clinic)
    login(client, gen_user("sender", clinic=clinic))
    poster = client.get(f"/c/{clinic.slug}/sources/{source.id}/poster.pdf")
    assert poster.status_code == 200 and poster.mimetype == "application/pdf"
    texts, size = _rendered_qr(poster.data)
    assert texts == [source.url]
    assert abs(size[0] / size[1] - 210 / 297) < 0.01  # A4 portrait
    card = client.get(f"/c/{clinic.slug}/sources/{source.id}/card.pdf")
    texts, size = _rendered_qr(card.data)
    assert texts == [source.url] and abs(size[0] / size[1] - 91 / 55) < 0.02
    fonts = subprocess.run(["pdffonts", "-"], input=poster.data, capture_output=True, check=False).stdout.decode()
    assert "CID" in fonts and " yes " in fonts  # the Japanese font is embedded (no missing glyph boxes)


def test_staff_create_a_source_and_see_it_listed_another_clinic_gets_404(client, sandbox, live_server):
    clinic, channel, _ = booking_clinic(sandbox, live_server)
    other, _ = connect_clinic(sandbox, live_server, name="別院")
    theirs = _source(other, name="よその経路")
    login(client, gen_user("sender", clinic=clinic))

    created = client.post(f"/c/{clinic.slug}/sources/new", data={"csrf_token": csrf_token(client), "name": "Instagram"})
    assert created.status_code == 302
    listing = client.get(f"/c/{clinic.slug}/sources/").get_data(as_text=True)
    assert "Instagram" in listing and "よその経路" not in listing
    duplicate = client.post(
        f"/c/{clinic.slug}/sources/new", data={"csrf_token": csrf_token(client), "name": "Instagram"}
    )
    assert duplicate.status_code == 400
    assert client.get(f"/c/{clinic.slug}/sources/{theirs.id}").status_code == 404
    assert client.get(f"/c/{clinic.slug}/sources/{theirs.id}/poster.pdf").status_code == 404
