"""A model's output ids as beam search sees them, and letter case on both sides.

Like pyctcdecode's ``alphabet.py``: validate the vocabulary once, derive the decoder's
labels, and decide how the model's case and an LM's case meet.

- **Labels.** The decoder's labels come from the model's ``Vocabulary``: blank → ``""``,
  word delimiter → ``" "``, and every special token (``<s>``, ``</s>``, ``<unk>``, added
  tokens) gets a private-use character that is never text. Beam search folds the
  probability of specials into the blank first, so it treats them exactly as greedy
  decoding does (they emit nothing and do not split words) and they can never win a frame.
- **Case.** The model's case (``alphabet_case``) and the LM's (``text_case`` of its
  unigrams) are compared when a decoder is built. Equal: nothing to do. Opposite single
  cases (an upper-case model with a lower-case LM, or the reverse): the LM side is
  converted: beam search runs on labels in the LM's case (``case_map``), so every word and
  word prefix is looked up as the LM spells it, and the words found are mapped back to the
  model's case. This is exact because both sides spell the same words, and it works the
  same on every engine. Letters without a one-to-one case partner (``ß``, final ``ς``) are
  left as they are. A mixed-case LM for a single-case model
  cannot be mapped reliably ("Paris" vs "paris"): ``ConfigError`` telling to rebuild the
  LM with ``w2v2 lm build --model``. An LM whose words mostly cannot be spelled with the
  model's alphabet is refused too.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..errors import ConfigError
from ..records import WORD_START, Vocabulary

logger = logging.getLogger("w2v2cli")

#: LM words that are not words: never unigrams, never text.
LM_SPECIAL_WORDS = frozenset({"<s>", "</s>", "<unk>"})

_PLACEHOLDER_BMP = (0xE000, 0xF900)  # Unicode private use areas: never in real text
_PLACEHOLDER_PLANE15 = 0xF0000
_CASES = ("upper", "lower", "mixed", "none")
#: How transformers' ``Wav2Vec2ProcessorWithLM`` (pyctcdecode's ``alphabet.py``) writes and
#: recognises the unknown-word token in ``alphabet.json``.
UNK_TOKEN = "\u2047"
UNK_BPE_TOKEN = f"{WORD_START}{UNK_TOKEN}{WORD_START}"
UNK_TOKEN_PTN = re.compile(r"^[<\[]unk[>\]]$", flags=re.IGNORECASE)


@dataclass(frozen=True)
class DecoderAlphabet:
    """What beam search needs to know about a model's output ids.

    ``labels[i]`` is pyctcdecode's label for id ``i``. ``folds`` are ``(src, dst)`` pairs:
    before decoding, the probability of column ``src`` is added to column ``dst`` and
    ``src`` is silenced (specials into the blank; extra space tokens into the main word
    boundary). ``chars`` are the characters words can be spelled with; ``case`` is
    ``alphabet_case``.
    """

    labels: tuple[str, ...]
    folds: tuple[tuple[int, int], ...]
    chars: frozenset[str]
    case: str
    has_word_boundary: bool


def _placeholder(token_id: int) -> str:
    """A label for a token that must never become text: a private-use character."""
    size = _PLACEHOLDER_BMP[1] - _PLACEHOLDER_BMP[0]
    if token_id < size:
        return chr(_PLACEHOLDER_BMP[0] + token_id)
    return chr(_PLACEHOLDER_PLANE15 + token_id - size)


def is_placeholder(c: str) -> bool:
    """True for the private-use characters ``decoder_alphabet`` gives to specials."""
    o = ord(c)
    return _PLACEHOLDER_BMP[0] <= o < _PLACEHOLDER_BMP[1] or _PLACEHOLDER_PLANE15 <= o < 0x10FFFE


def _is_letter_id(vocab: Vocabulary, i: int) -> bool:
    return i != vocab.blank_id and i not in vocab.special_ids and not vocab.is_word_boundary(i)


def alphabet_chars(vocab: Vocabulary) -> frozenset[str]:
    """Characters of the tokens that can appear in words (no blank, specials, boundaries).

    Multi-character tokens contribute each of their characters: spellability checks are
    done per character (wav2vec2 CTC vocabularies are characters in practice; a subword
    vocabulary's pieces spell any word made of their characters, since SentencePiece keeps
    every character as a piece). A piece's word-start marker (``▁``, or Omnilingual ASR's
    leading space) is not a character of words.
    """
    return frozenset(c for i in range(vocab.size) if _is_letter_id(vocab, i) for c in vocab.text(i))


def _char_case(c: str) -> str | None:
    """``upper``/``lower`` for letters with a clean one-to-one case pair, else None.

    Letters whose case mapping does not round-trip (``ß`` → ``SS``, final ``ς``, dotless
    ``ı``) say nothing about an alphabet's case and are ignored.
    """
    up, low = c.upper(), c.lower()
    if up == low:
        return None
    if c == up and low.upper() == c:
        return "upper"
    if c == low and up.lower() == c:
        return "lower"
    return None


def _case_of(upper: int, lower: int, *, tolerance: float = 0.0) -> str:
    total = upper + lower
    if total == 0:
        return "none"
    if lower <= tolerance * total:
        return "upper"
    if upper <= tolerance * total:
        return "lower"
    return "mixed"


def alphabet_case(vocab: Vocabulary) -> str:
    """``upper``, ``lower``, ``mixed`` (both cases among the letters) or ``none`` (a script
    without case: Arabic, Devanagari, CJK...)."""
    cases = [_char_case(c) for c in alphabet_chars(vocab)]
    return _case_of(cases.count("upper"), cases.count("lower"))


def text_case(words: Iterable[str], *, sample: int = 50_000) -> str:
    """The case of a word list (an LM's unigrams), as ``alphabet_case`` names it.

    A word counts as upper (or lower) when all its cased letters are; ``Title`` words count
    as neither. Up to 10% of the other case is tolerated (acronyms in a lower-case LM, a
    stray word in an upper-case one). Looks at most ``sample`` words, spread over the list.
    """
    items = words if isinstance(words, Sequence) else list(words)
    step = max(1, len(items) // sample)
    upper = lower = other = 0
    for word in items[::step]:
        if word in LM_SPECIAL_WORDS:
            continue
        cases = {_char_case(c) for c in word} - {None}
        if cases == {"upper"}:
            upper += 1
        elif cases == {"lower"}:
            lower += 1
        elif cases:
            other += 1
    if upper + lower + other == 0:
        return "none"
    total = upper + lower + other
    if upper >= 0.9 * total:
        return "upper"
    if lower >= 0.9 * total:
        return "lower"
    return "mixed"


def fold_case(text: str, case: str) -> str:
    """``text`` in ``case`` (``upper``/``lower``); unchanged for ``mixed``/``none``."""
    if case == "upper":
        return text.upper()
    if case == "lower":
        return text.lower()
    return text


def decoder_alphabet(vocab: Vocabulary) -> DecoderAlphabet:
    """Validate a vocabulary for beam search and derive pyctcdecode's labels.

    Raises ``ConfigError`` for what pyctcdecode would silently misread: ``##`` word pieces
    (ctc-beam-decoder refuses them), ``▁`` outside a subword vocabulary's word starts,
    tokens with whitespace inside, and duplicate labels. Subword vocabularies get BPE
    labels (``subword_alphabet``).
    """
    if not 0 <= vocab.blank_id < vocab.size:
        raise ConfigError(f"blank id {vocab.blank_id} is outside the vocabulary ({vocab.size})")
    if vocab.is_subword:
        return subword_alphabet(vocab)
    labels: list[str] = []
    folds: list[tuple[int, int]] = []
    boundary: int | None = vocab.delimiter_id
    if boundary is None:
        spaces = [i for i, t in enumerate(vocab.tokens) if t == " " and i != vocab.blank_id]
        boundary = spaces[0] if spaces else None
    for i, token in enumerate(vocab.tokens):
        if i == vocab.blank_id:
            label = ""
        elif i == boundary:
            label = " "
        elif vocab.is_word_boundary(i) and boundary is not None:
            folds.append((i, boundary))  # a second boundary token (both "|" and " ")
            label = _placeholder(i)
        elif i in vocab.special_ids or token == "":
            folds.append((i, vocab.blank_id))
            label = _placeholder(i)
        else:
            if token.startswith(("##", "\u2581")):
                raise ConfigError(
                    f"token {token!r} (id {i}) looks like a word piece; beam search supports "
                    "character vocabularies only"
                )
            if any(c.isspace() for c in token):
                raise ConfigError(f"token {token!r} (id {i}) contains whitespace")
            if any(is_placeholder(c) for c in token):
                raise ConfigError(f"token {token!r} (id {i}) uses a private-use character")
            label = token
        labels.append(label)
    return _alphabet(vocab, labels, folds, boundary is not None)


def subword_alphabet(vocab: Vocabulary) -> DecoderAlphabet:
    """BPE labels for a subword vocabulary, as both engines read them (pyctcdecode's
    ``Alphabet``: any label starting with ``▁`` switches it to BPE mode).

    A word-initial piece (``▁the``, or Omnilingual ASR's `` the``) is ``▁`` + its text and
    begins a word; any other piece is its text and continues one; the blank is ``""``;
    specials get private-use characters folded into the blank, as for characters.

    A boundary token of its own (a bare ``▁`` or space, a delimiter) ends the word before
    it and begins one that the next piece continues, as transformers' decode reads ``▁`` +
    ``x``; other boundary tokens fold into it. Its label is ``▁`` and a private-use
    character, not ``▁`` alone: both engines give a label that *ends* in ``▁`` a second
    meaning (the next token processed, on whatever beam, starts a word: pyctcdecode's
    ``force_next_break``, which ctc-beam-decoder reproduces), which splits words of other
    beams (``th e``). Beam search removes that character from the words it returns; an LM
    sees it, so a word the model begins with a bare ``▁`` is unknown to the LM (such words
    are rare with real vocabularies, whose pieces begin most words). BPE labels have no
    space, so whitespace inside a piece is refused, and so are ``##`` pieces and a ``▁``
    after a piece's start.
    """
    labels: list[str] = []
    folds: list[tuple[int, int]] = []
    boundary: int | None = None
    for i, token in enumerate(vocab.tokens):
        if i == vocab.blank_id:
            label = ""
        elif vocab.is_word_boundary(i):
            if boundary is None:
                boundary, label = i, WORD_START + _placeholder(i)
            else:
                folds.append((i, boundary))
                label = _placeholder(i)
        elif i in vocab.special_ids or token == "":
            folds.append((i, vocab.blank_id))
            label = _placeholder(i)
        else:
            text = vocab.text(i)
            if token.startswith("##"):
                raise ConfigError(
                    f"token {token!r} (id {i}) is a '##' word piece; beam search supports "
                    "characters and SentencePiece-style pieces (▁) only"
                )
            if WORD_START in text or any(c.isspace() for c in text):
                raise ConfigError(f"token {token!r} (id {i}) has a word marker inside it")
            if any(is_placeholder(c) for c in text):
                raise ConfigError(f"token {token!r} (id {i}) uses a private-use character")
            label = WORD_START + text if vocab.starts_word(i) else text
        labels.append(label)
    return _alphabet(vocab, labels, folds, True)


def _alphabet(
    vocab: Vocabulary, labels: list[str], folds: list[tuple[int, int]], has_word_boundary: bool
) -> DecoderAlphabet:
    """The ``DecoderAlphabet`` of one label per id, refused when two ids share a label."""
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        if label in seen:
            raise ConfigError(
                f"tokens {seen[label]} and {i} both decode to {label!r}: ambiguous vocabulary"
            )
        seen[label] = i
    return DecoderAlphabet(
        labels=tuple(labels),
        folds=tuple(folds),
        chars=alphabet_chars(vocab),
        case=alphabet_case(vocab),
        has_word_boundary=has_word_boundary,
    )


def labels_for_pyctcdecode(vocab: Vocabulary) -> list[str]:
    """pyctcdecode labels for our decoder: blank ``""``, delimiter ``" "``, specials as
    private-use characters that never become text (see ``decoder_alphabet``)."""
    return list(decoder_alphabet(vocab).labels)


def hf_alphabet_labels(vocab: Vocabulary) -> list[str]:
    """Labels as transformers' ``Wav2Vec2ProcessorWithLM`` expects them in ``alphabet.json``.

    Its ``get_missing_alphabet_tokens`` wants every tokenizer token, with ``<pad>`` → ``""``,
    the delimiter → ``" "`` and ``<unk>`` → ``⁇``; other specials (``<s>``) stay as they
    are. A subword vocabulary keeps its ``▁`` pieces (pyctcdecode's BPE labels, with
    ``"is_bpe": true`` beside them), a literal leading space becomes ``▁`` (BPE labels have
    no spaces) and ``<unk>`` is ``▁⁇▁``. Only written for other tools; our decoder uses
    ``labels_for_pyctcdecode``.
    """
    labels: list[str] = []
    subword = vocab.is_subword
    for i, token in enumerate(vocab.tokens):
        if i == vocab.blank_id:
            labels.append("")
        elif subword and vocab.is_word_boundary(i):
            # One bare ▁ (pyctcdecode refuses duplicate labels); a second boundary token
            # (a "|" beside "▁") stays as it is.
            labels.append(token if WORD_START in labels else WORD_START)
        elif subword and vocab.starts_word(i):
            labels.append(WORD_START + vocab.text(i))  # a literal space (OmniASR) → ▁
        elif i == vocab.delimiter_id:
            labels.append(" ")
        elif UNK_TOKEN_PTN.match(token):
            labels.append(UNK_BPE_TOKEN if subword else UNK_TOKEN)
        else:
            labels.append(token)
    return labels


def lm_case_conversion(model_case: str, lm_case: str) -> str | None:
    """How LM lookups must be case-mapped for this model: None, ``"upper"`` or ``"lower"``.

    See the module docstring: opposite single cases are converted on the LM side, a
    mixed-case LM for a single-case model is refused.
    """
    if model_case not in _CASES or lm_case not in _CASES:
        raise ValueError(f"unknown case {model_case!r} / {lm_case!r}")
    if model_case in ("upper", "lower") and lm_case in ("upper", "lower"):
        return None if model_case == lm_case else lm_case
    if model_case in ("upper", "lower") and lm_case == "mixed":
        raise ConfigError(
            f"the model writes {model_case}-case text but the LM's words are in mixed case, "
            "which cannot be mapped reliably; rebuild the LM for this model with "
            "`w2v2 lm build --model MODEL ...`, which folds the text to the model's case"
        )
    return None


def case_map(chars: Iterable[str], model_case: str, lm_case: str) -> tuple[tuple[str, str], ...]:
    """``(model letter, LM letter)`` pairs that put the model's text in the LM's case.

    Only letters with a one-to-one partner are mapped (``E`` ↔ ``e``); one whose case
    mapping does not round-trip (``ß`` → ``SS``, final ``ς``, dotless ``ı``) or would land
    on another letter of the alphabet stays as it is, so the mapping is always invertible.
    """
    chars = set(chars)
    pairs = []
    for c in sorted(chars):
        mapped = fold_case(c, lm_case)
        if mapped == c or len(mapped) != 1 or mapped in chars:
            continue
        if fold_case(mapped, model_case) != c:
            continue
        pairs.append((c, mapped))
    return tuple(pairs)


def check_lm_spelling(
    unigrams: Sequence[str], chars: frozenset[str], model_case: str, conversion: str | None
) -> float:
    """Share of the LM's words the model can spell; refuses an LM that does not fit.

    Under 50%: ``ConfigError`` (wrong script, wrong model); under 90%: a warning. Returns
    the share. Words are first put in the model's case when the LM side is converted.
    """
    words = [w for w in unigrams if w not in LM_SPECIAL_WORDS]
    if not words or not chars:
        return 1.0
    step = max(1, len(words) // 50_000)
    sample = words[::step]
    target = model_case if conversion else None
    bad = [w for w in sample if not set(fold_case(w, target or "none")) <= chars]
    share = 1.0 - len(bad) / len(sample)
    examples = ", ".join(repr(w) for w in bad[:5])
    if share < 0.5:
        raise ConfigError(
            f"only {share:.0%} of the LM's words can be spelled with the model's alphabet "
            f"(e.g. {examples}); this LM does not fit this model. Build one with "
            "`w2v2 lm build --model MODEL ...`"
        )
    if share < 0.9:
        logger.warning(
            "%.0f%% of the LM's words cannot be spelled with the model's alphabet (e.g. %s); "
            "they can never be output",
            100 * (1 - share),
            examples,
        )
    return share
