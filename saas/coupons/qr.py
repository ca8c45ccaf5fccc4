"""QR codes drawn here as inline SVG (nothing leaves for a QR service)."""

from __future__ import annotations

import io

import segno
from markupsafe import Markup


def qr_svg(text: str, scale: int = 6) -> Markup:
    """An inline SVG QR code of ``text``."""
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="svg", scale=scale, border=2, xmldecl=False)
    return Markup(out.getvalue().decode())  # segno's own markup; ``text`` is only encoded in the modules
