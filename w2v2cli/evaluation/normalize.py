"""Text normalisation for scoring: only differences in *words* count as errors.

Numbers are not spelled out and contractions are not expanded: that is language-specific
and best done in the references themselves. ``prepare`` gives the text exactly as it is
scored (``normalize=False``: whitespace split only; or any function).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

#: Characters read as an apostrophe: ASCII, right and left single quotation marks (what word
#: processors put in "don’t"), and the modifier letter apostrophe.
APOSTROPHES = "'\u2019\u2018\u02bc"
_TO_ASCII_APOSTROPHE = str.maketrans({c: "'" for c in APOSTROPHES[1:]} | {"\u00ad": None})

Normalization = bool | Callable[[str], str]
"""``True``: ``normalize``; ``False``: raw text (whitespace split only); or any function."""


def normalize(text: str) -> str:
    """Normalise a transcript so that only differences in *words* count as errors.

    In order:

    1. Unicode NFKC, so look-alike encodings compare equal (full-width letters, ligatures
       such as "ﬁ", composed vs. decomposed accents).
    2. ``str.casefold`` (stronger than ``lower``: "Straße" → "strasse"), then NFKC again
       because case folding can leave text that is not NFKC.
    3. Typographic apostrophes (’ ‘ ʼ) become ``'``; soft hyphens (invisible) are dropped.
    4. An apostrophe between two word characters (letters, digits, combining marks) stays:
       "don't", "o'clock", "rock'n'roll". Any other apostrophe is a quotation mark or a
       trailing possessive and becomes a space: "'quoted'" → "quoted",
       "students'" → "students".
    5. Every other punctuation mark and symbol (Unicode categories P* and S*) becomes a
       space. Hyphens and dashes are punctuation, so "well-known" → "well known": CTC models
       emit either form, and splitting is the reading that never glues two words together.
       Symbols (%, $, &, emoji) go too: wav2vec2 alphabets cannot emit them.
    6. Whitespace runs collapse to single spaces; no leading or trailing space.

    Numbers are not spelled out and contractions are not expanded: that is language-specific
    and best done in the references themselves.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = unicodedata.normalize("NFKC", text).translate(_TO_ASCII_APOSTROPHE)
    out = []
    last = len(text) - 1
    for i, ch in enumerate(text):
        if ch == "'":
            in_word = 0 < i < last and _is_word_char(text[i - 1]) and _is_word_char(text[i + 1])
            out.append(ch if in_word else " ")
        elif unicodedata.category(ch)[0] in "PS":
            out.append(" ")
        else:
            out.append(ch)
    return " ".join("".join(out).split())


def _is_word_char(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LNM"


_default_normalize = normalize


def prepare(text: str, normalize: Normalization = True) -> str:
    """The text exactly as it is scored: normalised (or not), words joined by one space."""
    if callable(normalize):
        text = normalize(text)
    elif normalize:
        text = _default_normalize(text)
    return " ".join(text.split())
