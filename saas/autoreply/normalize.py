"""Japanese text normalisation shared by keywords and incoming messages."""

from __future__ import annotations

import functools
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


# Marks that NFKC folds into the character before them (half-width ﾞﾟ and the combining ones).
_HALF_WIDTH_MARKS = frozenset("\uff9e\uff9f")


def _is_mark(char: str) -> bool:
    return char in _HALF_WIDTH_MARKS or unicodedata.combining(char) > 0


@functools.lru_cache(maxsize=8192)
def _normalized_piece(piece: str) -> str:
    return normalize(piece)  # a text repeats few distinct characters: cached, it costs a lookup each


def normalize_with_offsets(text: str) -> tuple[str, list[int], list[int]]:
    """:func:`normalize` and, per normalised character, where it came from in ``text``.

    Returns (normalised, starts, ends): normalised[i] stems from text[starts[i]:ends[i]], so a
    phrase found in the normalised text can be highlighted in what staff typed. Each base
    character is normalised with the marks that follow it (ｶﾞ → ガ).
    """
    text = text or ""
    pieces: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    i = 0
    while i < len(text):
        j = i + 1
        while j < len(text) and _is_mark(text[j]):
            j += 1
        piece = _normalized_piece(text[i:j])
        pieces.append(piece)
        starts.extend([i] * len(piece))
        ends.extend([j] * len(piece))
        i = j
    return "".join(pieces), starts, ends
