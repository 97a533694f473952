"""Output casing (``--case``): keep | lower | sentence.

wav2vec2 English models emit upper-case letters without punctuation, which reads as
shouting in subtitles. Casing is a presentation choice, so writers apply it to a copy of
the transcript just before formatting; decoders and metrics never see it.

- ``keep``: the model's text unchanged.
- ``lower``: everything lower-cased.
- ``sentence``: lower-cased, then the first letter of the transcript and of every word
  after one ending in ``.``, ``?`` or ``!`` is capitalised (models usually emit no
  punctuation, so in practice only the first word), and the English pronoun ``i`` (alone
  or as ``i'm``, ``i've``, ``i'll``, ``i'd``) becomes ``I``. This last rule is for
  English; for languages where a lone ``i`` is a word (Catalan "and"), use ``lower``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import overload

from ..errors import ConfigError
from ..options import CASE_MODES
from ..records import Transcript

_SENTENCE_END = re.compile(r"[.?!][\"'’”)\]]*$")
_PRONOUN_I = re.compile(r"^i(?=$|['’](?:m|ve|ll|d)$)")


def check_case(mode: str) -> str:
    """Return ``mode`` if it is a known case mode, else raise ``ConfigError``."""
    if mode not in CASE_MODES:
        raise ConfigError(f"case must be {', '.join(CASE_MODES)}, not {mode!r}")
    return mode


def _capitalise(word: str) -> str:
    """Upper-case the first letter (skipping leading quotes or digits)."""
    for i, ch in enumerate(word):
        if ch.isalpha():
            return word[:i] + ch.upper() + word[i + 1 :]
    return word


def case_words(words: Sequence[str], mode: str) -> list[str]:
    """Apply a case mode to a sequence of words, as they would read joined by spaces."""
    check_case(mode)
    if mode == "keep":
        return list(words)
    out = [w.lower() for w in words]
    if mode == "lower":
        return out
    sentence_start = True
    for i, word in enumerate(out):
        if not word:
            continue
        word = _PRONOUN_I.sub("I", word)
        if sentence_start and any(ch.isalpha() for ch in word):
            word = _capitalise(word)
            sentence_start = False
        if _SENTENCE_END.search(word):
            sentence_start = True
        out[i] = word
    return out


def _case_text(text: str, mode: str) -> str:
    # Split keeping the whitespace, so the text is rebuilt exactly apart from case.
    parts = re.split(r"(\s+)", text)
    cased = case_words(parts[0::2], mode)
    parts[0::2] = cased
    return "".join(parts)


@overload
def apply_case(value: str, mode: str) -> str: ...
@overload
def apply_case(value: Transcript, mode: str) -> Transcript: ...
def apply_case(value: str | Transcript, mode: str) -> str | Transcript:
    """Return ``value`` with ``mode`` applied; a ``Transcript`` comes back as a copy.

    For a transcript, the text and the words are cased with the same rule, so cues built
    from words read exactly like the text. Token spans keep the model's case (they are
    not written by any format).
    """
    check_case(mode)
    if isinstance(value, str):
        return _case_text(value, mode)
    if mode == "keep":
        return value
    words = case_words([w.text for w in value.words], mode)
    return dataclasses.replace(
        value,
        text=_case_text(value.text, mode),
        words=tuple(
            dataclasses.replace(w, text=t) for w, t in zip(value.words, words, strict=True)
        ),
    )
