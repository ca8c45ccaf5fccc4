"""The rich menu editor in Chromium: pick a preset, place an area by dragging over grid cells, save."""

from __future__ import annotations

import sqlalchemy as sa

from saas.extensions import db
from saas.richmenu.models import RichMenu
from saas.tenancy.scoping import tenant_scope
from tests.browser_fixtures import sign_in
from tests.factories import gen_user
from tests.webhooks.support import connect_clinic


def _drag_over_cells(page, first: tuple[int, int], last: tuple[int, int]) -> None:
    """Drag from the centre of one grid cell to another (column, row; 0-based)."""
    cells = page.locator("#richmenu-preview rect.cell")
    boxes = {
        (int(cell.get_attribute("data-col")), int(cell.get_attribute("data-row"))): cell.bounding_box()
        for cell in cells.all()
    }
    start, end = boxes[first], boxes[last]
    page.mouse.move(start["x"] + start["width"] / 2, start["y"] + start["height"] / 2)
    page.mouse.down()
    page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=5)
    page.mouse.up()


def test_a_preset_and_a_drag_over_the_grid_place_the_areas_without_typing_pixels(page, sandbox, live_server):
    clinic, _ = connect_clinic(sandbox, live_server)
    clinic.website_url, clinic.address = "https://clinic.example.jp/", "東京都渋谷区道玄坂1-2-3"
    db.session.commit()
    with tenant_scope(clinic.id):
        db.session.add(RichMenu(name="基本メニュー", size="half", areas=[]))
        db.session.commit()
        menu_id = db.session.scalar(sa.select(RichMenu.id))
    sign_in(page, gen_user("admin", clinic=clinic), landing="**/c/**")
    page.goto(f"/c/{clinic.slug}/richmenus/{menu_id}")

    page.get_by_label("レイアウト").select_option(label="大・4分割")
    areas = page.locator("#richmenu-preview rect.area")
    assert areas.count() == 4
    assert page.locator("#richmenu-preview rect.cell").count() == 6 * 4

    page.get_by_label("領域1のラベル").click()  # select 予約, then give it the whole top row
    _drag_over_cells(page, (0, 0), (5, 1))
    assert page.get_by_label("領域1の終わりの列").input_value() == "6"
    page.get_by_label("領域2のラベル").fill("")  # the top row is 予約's now: drop 診療時間
    page.get_by_role("button", name="保存").click()
    page.get_by_text("保存しました。").wait_for()

    with tenant_scope(clinic.id):
        db.session.expire_all()
        menu = db.session.get(RichMenu, menu_id)
        assert menu.size == "full"
        assert [(a["label"], a["x"], a["y"], a["width"], a["height"]) for a in menu.areas] == [
            ("予約", 0, 0, 2500, 843),
            ("アクセス", 0, 843, 1250, 843),
            ("よくある質問", 1250, 843, 1250, 843),
        ]
