"""Draw a rich menu image from its layout (Pillow, a Japanese font when one is installed)."""

from __future__ import annotations

import io
import logging
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

log = logging.getLogger(__name__)
FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
    "/System/Library/Fonts/ヒラギノ角ゴシック W6.ttc",
)
PALETTE = ("#06c755", "#0b7a3b", "#2f9e66", "#4caf7d", "#138a4f", "#5cbf8a")
MAX_BYTES = 1024 * 1024


@lru_cache(maxsize=1)
def japanese_font_path() -> str | None:
    """The first Japanese font found on this machine (Debian: fonts-noto-cjk)."""
    for candidate in FONT_CANDIDATES:
        if Path(candidate).exists():
            return candidate
    log.warning("no Japanese font found (install fonts-noto-cjk); rich menu labels use Pillow's default font")
    return None


@lru_cache(maxsize=32)
def _font(size: int):
    path = japanese_font_path()
    return ImageFont.truetype(path, size) if path else ImageFont.load_default(size=size)


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
