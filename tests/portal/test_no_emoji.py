"""The portal's fonts (Noto Sans CJK JP first on machines without Hiragino) carry no emoji: a
pictograph in a template shows as an empty box. Icons are characters those fonts carry (✂ ↗ ▶ ♪)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PICTOGRAPHS = re.compile("[\U0001f000-\U0001faff]")  # emoji and pictographs: no glyph in Noto Sans CJK JP


def _pages() -> list[Path]:
    """Every template staff or patients see, and the sandbox's phone."""
    return sorted((ROOT / "frontend" / "templates").rglob("*.html")) + sorted((ROOT / "saas").rglob("*.html"))


def test_no_page_shows_an_emoji_that_renders_as_a_box():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {' '.join(PICTOGRAPHS.findall(line))}"
        for path in _pages()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if PICTOGRAPHS.search(line)
    ]
    assert len(_pages()) > 100 and found == []
