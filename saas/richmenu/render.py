"""Draw a rich menu image from its layout (Pillow, the project's Japanese font: saas.fonts)."""

from __future__ import annotations

import io
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from saas.fonts import japanese_font_path

PALETTE = ("#06c755", "#0b7a3b", "#2f9e66", "#4caf7d", "#138a4f", "#5cbf8a")
MAX_BYTES = 1024 * 1024


@lru_cache(maxsize=32)
def _font(size: int) -> ImageFont.FreeTypeFont:
    """Noto Sans JP Bold; a missing font raises (never Pillow's default, which draws □ for Japanese)."""
    return ImageFont.truetype(str(japanese_font_path("bold")), size)


def render_png(width: int, height: int, areas: list[dict]) -> bytes:
    """A PNG of exactly ``width`` × ``height`` with each area as a labelled tile (under 1 MB)."""
    image = Image.new("RGB", (width, height), "#ffffff")
    draw = ImageDraw.Draw(image)
    base = max(48, min(140, height // 9))
    for index, area in enumerate(areas):
        box = (area["x"], area["y"], area["x"] + area["width"] - 1, area["y"] + area["height"] - 1)
        draw.rectangle(box, fill=PALETTE[index % len(PALETTE)], outline="#ffffff", width=8)
        label = str(area.get("label") or "")
        center = (area["x"] + area["width"] / 2, area["y"] + area["height"] / 2)
        size = max(24, min(base, int(area["width"] * 0.85 / max(len(label), 1))))
        draw.text(center, label, fill="#ffffff", font=_font(size), anchor="mm")
    out = io.BytesIO()
    image.save(out, format="PNG", optimize=True)
    return out.getvalue()


class ImageRejected(ValueError):
    """An uploaded menu image LINE would refuse; the message says why (Japanese)."""


def check_upload(data: bytes, width: int, height: int) -> str:
    """Validate an upload against LINE's limits; returns its content type."""
    if len(data) > MAX_BYTES:
        raise ImageRejected("画像は1MB以下にしてください")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, size = image.format, image.size
    except Exception as exc:
        raise ImageRejected("画像を読み込めませんでした（PNGまたはJPEG）") from exc
    if kind not in {"PNG", "JPEG"}:
        raise ImageRejected("画像はPNGまたはJPEGにしてください")
    if size != (width, height):
        raise ImageRejected(f"画像のサイズは {width}×{height} にしてください（アップロード: {size[0]}×{size[1]}）")
    return "image/png" if kind == "PNG" else "image/jpeg"
