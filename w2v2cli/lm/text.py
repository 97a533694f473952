"""LM training text, spelled the way the model writes (``normalize_for_alphabet``).

NFC, case folded to the model's case, typographic apostrophes → ``'``, punctuation that the
alphabet has (like ``'``) kept only inside words, other punctuation and symbols separate
words, accents the alphabet lacks are stripped (``café`` → ``CAFE`` for an English model),
and any word that still has a character outside the alphabet is dropped whole: numbers are
*not* spelled out (``2nd``, ``1984`` disappear), foreign-script words disappear. Half a word
would teach the LM words the model can never produce.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from .alphabet import fold_case

_APOSTROPHES = "\u2019\u2018\u02bc\u00b4\u0060\u2032"  # ’ ‘ ʼ ´ ` ′


def _word_chars_ok(word: str, chars: frozenset[str] | None, case: str) -> str | None:
    """``word`` spelled with ``chars`` (accents stripped where needed), or None."""
    if chars is None:
        return word
    out = []
    for c in word:
        if c in chars:
            out.append(c)
            continue
        base = "".join(
            ch for ch in unicodedata.normalize("NFKD", c) if not unicodedata.combining(ch)
        )
        base = fold_case(base, case)
        if base and all(ch in chars for ch in base):
            out.append(base)
            continue
        return None
    return "".join(out)


def normalize_words(line: str, chars: frozenset[str] | None, case: str) -> tuple[list[str], int]:
    """Kept words and the number of dropped ones (see ``normalize_for_alphabet``)."""
    text = unicodedata.normalize("NFC", line)
    apostrophe_ok = chars is None or "'" in chars
    if apostrophe_ok:
        table = {ord(a): "'" for a in _APOSTROPHES if chars is None or a not in chars}
        text = text.translate(table)
    # Characters inside words: letters, marks and digits (digits only to drop the whole
    # word later), plus the alphabet's own punctuation.
    inner = set(chars or ()) | ({"'"} if apostrophe_ok else set())
    raw: list[str] = []
    current: list[str] = []
    for c in text:
        if c in inner or unicodedata.category(c)[0] in "LMN":
            current.append(c)
        elif current:
            raw.append("".join(current))
            current = []
    if current:
        raw.append("".join(current))
    kept: list[str] = []
    dropped = 0
    for word in raw:
        # Punctuation is kept only between word characters: 'quoted' → quoted.
        while word and unicodedata.category(word[0])[0] in "PS":
            word = word[1:]
        while word and unicodedata.category(word[-1])[0] in "PS":
            word = word[:-1]
        if not word:
            continue
        folded = _word_chars_ok(fold_case(word, case), chars, case)
        has_digit = any(unicodedata.category(c)[0] == "N" for c in word)
        if folded is None or (chars is None and has_digit):
            dropped += 1
            continue
        kept.append(folded)
    return kept, dropped


def normalize_for_alphabet(
    line: str, alphabet_chars: Iterable[str] | None = None, case: str = "none"
) -> str:
    """One line of LM training text, spelled the way the model writes.

    NFC; case folded to ``case`` (``upper``/``lower``; ``mixed``/``none`` keep it);
    typographic apostrophes become ``'`` when the alphabet has it; the alphabet's punctuation
    (``'``) is kept inside words only; other punctuation and symbols separate words; accents
    the alphabet lacks are stripped; words that still have a character outside the alphabet
    are dropped whole (numbers are not spelled out); whitespace collapses to single spaces.
    ``alphabet_chars=None`` (no model): letters, marks and in-word apostrophes are kept,
    words with digits are dropped.
    """
    chars = None if alphabet_chars is None else frozenset(alphabet_chars)
    return " ".join(normalize_words(line, chars, case)[0])
