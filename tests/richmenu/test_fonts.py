"""The Japanese font installs with the project, and generated images never fall back to □ boxes."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops, ImageDraw, ImageFont

from saas import fonts
from saas.richmenu import layouts, render


def _glyph(font: ImageFont.FreeTypeFont, text: str) -> bytes:
    image = Image.new("L", (160, 90))
    ImageDraw.Draw(image).text((8, 8), text, font=font, fill=255)
    return image.tobytes()


@pytest.mark.parametrize("weight", ["regular", "medium", "bold"])
def test_the_project_font_draws_each_japanese_character_as_itself(weight):
    font = ImageFont.truetype(str(fonts.japanese_font_path(weight)), 64)
    assert font.getname()[0] == "Noto Sans JP"
    drawn = {_glyph(font, text) for text in ("予", "約", "駐", "ア", "ん")}
    assert len(drawn) == 5  # a font without Japanese draws one identical box for all of them


def test_rich_menu_labels_are_drawn_in_japanese_not_boxes():
    _, areas = layouts.preset_areas("half3")

    def rendered(label: str) -> Image.Image:
        with Image.open(io.BytesIO(render.render_png(2500, 843, [{**a, "label": label} for a in areas]))) as image:
            return image.convert("RGB")

    assert ImageChops.difference(rendered("予約"), rendered("診療")).getbbox() is not None


def test_a_missing_font_is_a_loud_error_not_a_menu_of_boxes(monkeypatch, tmp_path):
    monkeypatch.setattr(fonts, "FONT_PACKAGE", tmp_path / "noto-sans-jp")
    render._font.cache_clear()
    try:
        with pytest.raises(fonts.JapaneseFontMissing, match="make install"):
            render.render_png(2500, 843, layouts.preset_areas("half3")[1])
    finally:
        render._font.cache_clear()
    with pytest.raises(ValueError, match="weight"):
        fonts.japanese_font_path("heavy")
