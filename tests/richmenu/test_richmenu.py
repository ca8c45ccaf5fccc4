"""Rich menus: rendered images, upload checks, bindings, deployment through the sandbox, editor."""

from __future__ import annotations

import io

import pytest
import requests
import sqlalchemy as sa
from PIL import Image

from saas.booking import services as booking
from saas.booking.models import BookingMode
from saas.extensions import db
from saas.friends.models import Friend, FriendTag, Tag
from saas.richmenu import layouts, render, services
from saas.richmenu.models import MenuLinks, RichMenu
from saas.tenancy.scoping import platform_scope, tenant_scope
from tests.conftest import csrf_token
from tests.factories import gen_user
from tests.helpers import assert_rows_isolated, login, original_url
from tests.webhooks.support import connect_clinic, run_jobs


def _png(width: int, height: int, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(out, format=fmt)
    return out.getvalue()


@pytest.mark.parametrize(("preset", "size"), [("full6", (2500, 1686)), ("half3", (2500, 843))])
def test_the_menu_image_is_rendered_as_a_png_of_the_menu_size(preset, size):
    menu_size, areas = layouts.preset_areas(preset)
    data = render.render_png(*size, areas)
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "PNG" and image.size == size
    assert len(data) <= 1024 * 1024
    assert sum(a["width"] * a["height"] for a in areas) == size[0] * size[1]  # the grid covers the menu


def test_an_uploaded_image_must_be_png_or_jpeg_within_1mb_and_the_exact_size():
    assert render.check_upload(_png(2500, 843), 2500, 843) == "image/png"
    assert render.check_upload(_png(2500, 843, "JPEG"), 2500, 843) == "image/jpeg"
    with pytest.raises(render.ImageRejected, match="サイズ"):
        render.check_upload(_png(1200, 405), 2500, 843)
    with pytest.raises(render.ImageRejected, match="PNGまたはJPEG"):
        render.check_upload(_png(2500, 843, "GIF"), 2500, 843)
    with pytest.raises(render.ImageRejected, match="1MB"):
        render.check_upload(b"0" * (1024 * 1024 + 1), 2500, 843)


def _tagged_friends(sandbox, channel, clinic, tag_name: str, names: list[str]) -> list[str]:
    ids = []
    for name in names:
        user_id = sandbox.add_patient(channel, name)
        sandbox.follow(channel, user_id)
        ids.append(user_id)
    run_jobs()
    with tenant_scope(clinic.id):
        tag = Tag(clinic_id=clinic.id, name=tag_name)
        db.session.add(tag)
        db.session.flush()
        for friend in db.session.scalars(sa.select(Friend).where(Friend.line_user_id.in_(ids))):
            db.session.add(FriendTag(clinic_id=clinic.id, friend_id=friend.id, tag_id=tag.id))
        db.session.commit()
        return ids, tag.id


def test_deploy_creates_the_menu_uploads_the_image_sets_the_default_and_links_a_tag(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    (first, second), tag_id = _tagged_friends(sandbox, channel, clinic, "小児", ["子 一", "子 二"])
    untagged = sandbox.add_patient(channel, "大人")
    sandbox.follow(channel, untagged)
    run_jobs()
    with tenant_scope(clinic.id):
        booking.get_settings(clinic.id).mode = BookingMode.NATIVE
        links = services.get_links(clinic.id)
        links.recruitment_url, links.online_consultation_url = (
            "https://recruit.example.jp/",
            "https://online.example.jp/",
        )
        clinic.address = "東京都千代田区1-1"
        size, areas = layouts.preset_areas("full6")
        default = RichMenu(clinic_id=clinic.id, name="基本", size=size, areas=areas, is_default=True)
        size, areas = layouts.preset_areas("half3", ["booking", "hours", "faq"])
        kids = RichMenu(
            clinic_id=clinic.id, name="小児", size=size, areas=areas, segment_tag_id=tag_id, alias_id="kids"
        )
        db.session.add_all([default, kids])
        db.session.commit()
        default_id = services.deploy(clinic, default).rich_menu_id
        result = services.deploy(clinic, kids)
    assert result.linked_friends == 2 and result.link_calls == 1
    log = sandbox.requests(channel)
    operations = [r["operation"] for r in log]
    assert operations.count("createRichMenu") == 2 and operations.count("setRichMenuImage") == 2
    assert "setDefaultRichMenu" in operations and "linkRichMenuIdToUsers" in operations
    created = [r["body"] for r in log if r["operation"] == "createRichMenu"][0]
    actions = {a["action"]["label"]: a["action"] for a in created["areas"]}
    assert "/l/" in actions["予約"]["uri"], "menu URLs are tracked short links"
    assert original_url(actions["予約"]["uri"]).endswith(f"/book/{clinic.slug}/")
    assert original_url(actions["採用情報"]["uri"]) == "https://recruit.example.jp/"
    assert actions["診療時間"] == {"type": "message", "label": "診療時間", "text": "診療時間"}

    def phone(user):
        return requests.get(f"{sandbox.url}/_sandbox/channels/{channel}/patients/{user}/richmenu", timeout=10).json()

    assert phone(first)["richMenu"]["richMenuId"] == result.rich_menu_id and phone(first)["hasImage"]
    assert phone(untagged)["richMenu"]["richMenuId"] == default_id
    aliases = [r for r in log if r["operation"] == "createRichMenuAlias"]
    assert aliases and aliases[0]["body"] == {"richMenuAliasId": "kids", "richMenuId": result.rich_menu_id}


def test_a_missing_binding_is_explained_before_anything_is_sent(sandbox, live_server):
    clinic, channel = connect_clinic(sandbox, live_server)
    with tenant_scope(clinic.id):
        size, areas = layouts.preset_areas("full6")
        menu = RichMenu(clinic_id=clinic.id, name="基本", size=size, areas=areas, is_default=True)
        db.session.add(menu)
        db.session.commit()
        with pytest.raises(services.MenuProblem, match="「予約」のリンク"):
            services.deploy(clinic, menu)
    assert [r for r in sandbox.requests(channel) if r["operation"] == "createRichMenu"] == []


def _cells(index: int, columns: tuple[int, int], rows: tuple[int, int]) -> dict:
    return {
        f"a{index}_col_from": columns[0],
        f"a{index}_col_to": columns[1],
        f"a{index}_row_from": rows[0],
        f"a{index}_row_to": rows[1],
    }


def test_the_editor_places_areas_on_grid_cells_and_binds_features(client, sandbox, live_server):
    clinic, _ = connect_clinic(sandbox, live_server)
    login(client, gen_user("admin", clinic=clinic))
    answer = client.post(f"/c/{clinic.slug}/richmenus/new", data={"preset": "half2", "csrf_token": csrf_token(client)})
    edit_url = answer.headers["Location"]
    page = client.get(edit_url).get_data(as_text=True)
    assert 'data-testid="richmenu-preview"' in page and "予約" in page
    assert "{{clinic.booking_url}}" not in page, "a bound area shows its feature, not the binding"
    form = {
        "csrf_token": csrf_token(client),
        "name": "タブA",
        "size": "half",
        "chat_bar_text": "メニュー",
        "alias_id": "tab-a",
        "a0_label": "よくある質問",
        "a0_action": "feature:faq",
        **_cells(0, (1, 4), (1, 2)),
        "a1_label": "タブB",
        "a1_action": "richmenuswitch",
        "a1_value": "tab-b",
        **_cells(1, (5, 6), (1, 2)),
    }
    client.post(edit_url, data=form)
    with tenant_scope(clinic.id):
        menu = db.session.scalars(sa.select(RichMenu)).one()
        assert [(a["label"], a["x"], a["width"], a["height"]) for a in menu.areas] == [
            ("よくある質問", 0, 1666, 843),
            ("タブB", 1666, 834, 843),
        ]
        assert menu.areas[0]["action"] == {"type": "message", "text": "よくある質問"}
        assert services.line_menu(menu, clinic)["areas"][1]["action"]["richMenuAliasId"] == "tab-b"
    form.update(_cells(1, (4, 6), (1, 2)))  # now covers column 4 of よくある質問 too
    client.post(edit_url, data=form)
    assert "「よくある質問」と「タブB」が重なっています" in client.get(edit_url).get_data(as_text=True)
    image = client.get(edit_url + "/image.png")
    assert image.mimetype == "image/png" and Image.open(io.BytesIO(image.data)).size == (2500, 843)


def test_choosing_a_preset_lays_the_areas_out_again_keeping_their_order(client, sandbox, live_server):
    clinic, _ = connect_clinic(sandbox, live_server)
    clinic.website_url, clinic.address = "https://clinic.example.jp/", "東京都渋谷区道玄坂1-2-3"
    db.session.commit()
    login(client, gen_user("admin", clinic=clinic))
    edit_url = client.post(
        f"/c/{clinic.slug}/richmenus/new", data={"preset": "half2", "csrf_token": csrf_token(client)}
    ).headers["Location"]
    form = {
        "csrf_token": csrf_token(client),
        "size": "half",
        "preset": "full4",
        "a0_label": "ご予約",
        "a0_action": "feature:booking",
        **_cells(0, (1, 3), (1, 2)),
        "a1_label": "サイト",
        "a1_action": "uri",
        "a1_value": "https://example.jp/",
        **_cells(1, (4, 6), (1, 2)),
    }
    client.post(edit_url, data=form)
    with tenant_scope(clinic.id):
        menu = db.session.scalars(sa.select(RichMenu)).one()
        assert menu.size == "full"
        assert [a["label"] for a in menu.areas] == ["ご予約", "サイト", "診療時間", "アクセス"]
        assert [(a["x"], a["y"]) for a in menu.areas] == [(0, 0), (1250, 0), (0, 843), (1250, 843)]
        assert menu.areas[1]["action"] == {"type": "uri", "uri": "https://example.jp/"}


def test_rich_menu_rows_are_isolated_between_clinics(sandbox, live_server):
    ids = []
    for name in ("A院", "B院"):
        clinic, _ = connect_clinic(sandbox, live_server, name=name)
        with tenant_scope(clinic.id):
            menu = RichMenu(clinic_id=clinic.id, name=name, areas=[])
            db.session.add(menu)
            links = services.get_links(clinic.id)
            db.session.commit()
            ids.append({RichMenu: menu.id, MenuLinks: links.id})
    for model in (RichMenu, MenuLinks):
        with platform_scope("test"):
            rows = [db.session.get(model, found[model]) for found in ids]
        assert_rows_isolated(model, *rows)
