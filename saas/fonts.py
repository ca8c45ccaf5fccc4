"""The Japanese font of every image and document the product generates (rich menus, posters, PDFs).

Noto Sans JP (SIL Open Font License) installs with the project: the npm package
``@expo-google-fonts/noto-sans-jp`` in ``frontend/package.json``, installed by ``make install``.
There is deliberately no fallback: without a Japanese font Pillow draws □ for every Japanese
character, so a missing font is an error that says how to install it.
"""

from __future__ import annotations

from pathlib import Path

from saas.config import ROOT

FONT_PACKAGE = ROOT / "frontend" / "node_modules" / "@expo-google-fonts" / "noto-sans-jp"
WEIGHTS = {"regular": "400Regular", "medium": "500Medium", "bold": "700Bold"}


class JapaneseFontMissing(RuntimeError):
    """The project's Japanese font is not installed (``make install`` installs it)."""


def japanese_font_path(weight: str = "bold") -> Path:
    """The TrueType file of Noto Sans JP in ``weight`` (regular, medium or bold), for Pillow and PDF writers."""
    if weight not in WEIGHTS:
        raise ValueError(f"unknown weight {weight!r}; weights are {sorted(WEIGHTS)}")
    style = WEIGHTS[weight]
    path = FONT_PACKAGE / style / f"NotoSansJP_{style}.ttf"
    if not path.is_file():
        raise JapaneseFontMissing(
            f"日本語フォントがありません / the Japanese font is missing: {path}\n"
            "`make install`（または `cd frontend && npm install`）でインストールしてください / run `make install`."
        )
    return path
