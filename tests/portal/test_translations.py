"""The English catalog: engineers append to it in parallel, so two entries for one message creep in."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from babel.messages.pofile import read_po

CATALOG = Path(__file__).resolve().parents[2] / "saas" / "translations" / "en" / "LC_MESSAGES" / "messages.po"


def _msgids(text: str) -> list[tuple[str | None, str]]:
    """Every (context, message id) in the order written, duplicates kept (Babel's reader merges them)."""
    entries, context, current, field = [], None, None, None
    for line in text.splitlines() + [""]:
        if line.startswith("msgctxt "):
            context, field = line[8:].strip('"'), "ctx"
        elif line.startswith("msgid "):
            current, field = line[6:].strip('"'), "id"
        elif line.startswith('"') and field == "id":
            current += line.strip('"')
        elif line.startswith("msgstr") or not line.strip():
            if current:
                entries.append((context, current))
            context, current, field = (None, None, None) if not line.strip() else (context, current, "str")
            if line.startswith("msgstr"):
                current = None
    return entries


def test_every_message_is_translated_once():
    duplicates = [key for key, n in Counter(_msgids(CATALOG.read_text(encoding="utf-8"))).items() if n > 1]
    assert duplicates == [], "translated twice (the last wins silently): " + ", ".join(m for _, m in duplicates)


def test_the_catalog_reads_and_translates_the_portals_words():
    with CATALOG.open("rb") as handle:
        catalog = read_po(handle, locale="en")
    assert catalog.get("ログイン").string and catalog.get("友だち").string
