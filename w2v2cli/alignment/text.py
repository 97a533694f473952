"""The text to align: its words as written, each with what the model can spell of it.

Rules (docs/alignment.md quotes them):

- **Words** are the whitespace-separated pieces of the given text, kept exactly as written
  (case, accents, punctuation, digits): that is what every output shows.
- **Spelling** a word for the model is what ``w2v2 lm build`` does to training text
  (``lm.text.normalize_words``): NFC, case folded to the model's, typographic apostrophes
  to ``'``, the alphabet's punctuation kept inside words only, other punctuation and
  symbols splitting the word (``well-known`` is aligned as ``WELL KNOWN``, and shown as one
  word), accents the alphabet lacks stripped (``café`` → ``CAFE``). Numbers are not
  spelled out, so a part with a digit or a letter outside the alphabet is dropped.
- **Subword vocabularies** (SentencePiece-style pieces, ``Vocabulary.is_subword``): each
  part is spelled by the model's own tokenizer when there is one (``tokenizer(part)``, so
  the pieces are those the model learned to emit: a word-initial piece, ``▁cat``, then
  continuations, or a bare ``▁`` and continuations), else by longest match (the longest
  word-initial piece, then the longest continuations). A part the tokenizer spells with
  an unknown or special token cannot be spelled.
- A word none of whose parts can be spelled (``1984``, ``€5``, ``&``, a word in another
  script) **cannot be aligned**: it keeps its place, its times come from its neighbours
  (see ``align.py``) and it is flagged.
- Punctuation standing alone (``—``, ``-``, ``…``, a quote mark) is not a word: it is
  attached to the word before it (or, at the start, to the word after it) so that it
  stays where it was written. Symbols that are read aloud (``&``, ``%``, ``+``, ``=``,
  ``@``, ``#``, ``°``, currency and mathematical signs) are words that cannot be aligned.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from ..lm.alphabet import alphabet_case, alphabet_chars
from ..lm.text import normalize_words
from ..records import Vocabulary

#: Characters that stand for spoken words although they are not letters or digits.
SPOKEN_SYMBOLS = frozenset("&%+=@#°§")


@dataclass(frozen=True)
class TextWord:
    """One word of the given text: ``text`` as written, ``parts`` its spellings for the
    model (each a tuple of vocabulary ids); no parts: it cannot be aligned."""

    text: str
    parts: tuple[tuple[int, ...], ...]

    @property
    def alignable(self) -> bool:
        return bool(self.parts)


def _is_spoken(token: str) -> bool:
    """Whether a whitespace-separated piece stands for speech (else it is punctuation)."""
    for c in token:
        cat = unicodedata.category(c)
        if cat[0] in "LN" or cat in ("Sc", "Sm") or c in SPOKEN_SYMBOLS:
            return True
    return False


class Speller:
    """Turns words into vocabulary ids with the model's alphabet and case (and, for a
    subword vocabulary, its tokenizer: see the module's rules)."""

    def __init__(self, vocabulary: Vocabulary, tokenizer: Any = None) -> None:
        self.vocabulary = vocabulary
        self.chars = alphabet_chars(vocabulary)
        self.case = alphabet_case(vocabulary)
        self.subword = vocabulary.is_subword
        self.tokenizer = tokenizer if self.subword else None
        letters = [
            i
            for i, t in enumerate(vocabulary.tokens)
            if t
            and i != vocabulary.blank_id
            and i not in vocabulary.special_ids
            and not vocabulary.is_word_boundary(i)
        ]
        # Continuations by their text; word-initial pieces by theirs, apart.
        self._ids = {vocabulary.text(i): i for i in letters if not vocabulary.starts_word(i)}
        self._initial = {vocabulary.text(i): i for i in letters if vocabulary.starts_word(i)}
        self._letters = frozenset(letters)
        bare = [i for i in range(vocabulary.size) if vocabulary.is_word_boundary(i)]
        self._bare = frozenset(bare)
        self._bare_id = next(
            (i for i in bare if i != vocabulary.delimiter_id), bare[0] if bare else None
        )
        lengths = [len(t) for t in (*self._ids, *self._initial)]
        self._longest = max(lengths, default=1)

    def ids(self, spelled: str) -> tuple[int, ...] | None:
        """Vocabulary ids of ``spelled`` (longest token first), or None. For a subword
        vocabulary: the model's tokenizer's pieces, or the longest word-initial piece
        first (a bare marker where none fits) and then the longest continuations."""
        if self.tokenizer is not None:
            return self._tokenized(spelled)
        out: list[int] = []
        pos = 0
        if self.subword and spelled:
            for size in range(min(self._longest, len(spelled)), 0, -1):
                token_id = self._initial.get(spelled[:size])
                if token_id is not None:
                    out.append(token_id)
                    pos = size
                    break
            else:
                if self._bare_id is None:
                    return None
                out.append(self._bare_id)
        while pos < len(spelled):
            for size in range(min(self._longest, len(spelled) - pos), 0, -1):
                token_id = self._ids.get(spelled[pos : pos + size])
                if token_id is not None:
                    out.append(token_id)
                    pos += size
                    break
            else:
                return None
        return tuple(out)

    def _tokenized(self, spelled: str) -> tuple[int, ...] | None:
        """The tokenizer's pieces for one word; None when it needs a token that is not a
        piece of the vocabulary (``<unk>``, a special, an id past the model's output)."""
        ids = [int(i) for i in self.tokenizer(spelled, add_special_tokens=False)["input_ids"]]
        if not ids or not all(i in self._letters or i in self._bare for i in ids):
            return None
        if all(i in self._bare for i in ids):
            return None
        return tuple(ids)

    def parts(self, word: str) -> tuple[tuple[int, ...], ...]:
        kept, _ = normalize_words(word, self.chars, self.case)
        spelled = (self.ids(part) for part in kept)
        return tuple(ids for ids in spelled if ids)


def split_text(text: str, vocabulary: Vocabulary, tokenizer: Any = None) -> tuple[TextWord, ...]:
    """The words of ``text`` with their spellings (see the module's rules); ``tokenizer``
    (transformers', or anything called as ``tokenizer(word, add_special_tokens=False)``
    that returns ``{"input_ids": [...]}``) spells words for a subword vocabulary."""
    speller = Speller(vocabulary, tokenizer)
    words: list[TextWord] = []
    leading: list[str] = []  # punctuation before the first word
    for token in text.split():
        if not _is_spoken(token):
            if words:
                last = words[-1]
                words[-1] = TextWord(f"{last.text} {token}", last.parts)
            else:
                leading.append(token)
            continue
        if leading:
            token = " ".join([*leading, token])
            leading = []
        words.append(TextWord(token, speller.parts(token)))
    if leading:  # nothing but punctuation: nothing to say, nothing to align
        return ()
    return tuple(words)
