"""Japanese text normalisation shared by keywords and incoming messages."""

from __future__ import annotations

import re
import unicodedata

import jaconv

_SPACES = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Fold the ways patients type the same word into one form.

    NFKC turns half-width katakana and full-width ASCII into their ordinary forms,
    hiragana becomes katakana (ちゅうしゃじょう == チュウシャジョウ), case is folded and
    whitespace dropped (Japanese does not separate words with spaces).
    """
    text = unicodedata.normalize("NFKC", text or "")
    text = jaconv.hira2kata(text)
    return _SPACES.sub("", text.casefold())
