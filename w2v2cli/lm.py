"""KenLM language models for beam search: tools, alphabets, case, unigrams, building.

Everything on the LM side lives here; ``beam.py`` uses it to decode and ``cli_lm.py`` to
build. No CLI parsing and no decoding here.

Decisions made in this module (the README quotes them):

- **Tools.** ``lmplz`` and ``build_binary`` are looked up in ``$W2V2_KENLM_BIN`` (an explicit
  choice wins), then in the checkout's ``lm/bin/`` (where ``lm/build_kenlm.sh`` puts them),
  then on ``PATH``.
- **Alphabet.** The decoder's labels come from the model's ``Vocabulary``: blank → ``""``,
  word delimiter → ``" "``, and every special token (``<s>``, ``</s>``, ``<unk>``, added
  tokens) gets a private-use character that is never text. Beam search folds the
  probability of specials into the blank first, so it treats them exactly as greedy
  decoding does (they emit nothing and do not split words) and they can never win a frame.
- **Case.** The model's case (``alphabet_case``) and the LM's (``text_case`` of its
  unigrams) are compared when a decoder is built. Equal: nothing to do. Opposite single
  cases (an upper-case model with a lower-case LM, or the reverse): the LM side is
  converted, i.e. every word is case-mapped before it is looked up in the LM, which is
  exact because both sides spell the same words. A mixed-case LM for a single-case model
  cannot be mapped reliably ("Paris" vs "paris"): ``ConfigError`` telling to rebuild the
  LM with ``w2v2 lm build --model``. An LM whose words mostly cannot be spelled with the
  model's alphabet is refused too.
- **Text normalisation** for building (``normalize_for_alphabet``): NFC, case folded to the
  model's case, typographic apostrophes → ``'``, punctuation that the alphabet has (like
  ``'``) kept only inside words, other punctuation and symbols separate words, accents the
  alphabet lacks are stripped (``café`` → ``CAFE`` for an English model), and any word that
  still has a character outside the alphabet is dropped whole: numbers are *not* spelled
  out (``2nd``, ``1984`` disappear), foreign-script words disappear. Half a word would
  teach the LM words the model can never produce.
"""

from __future__ import annotations

import bz2
import gzip
import json
import logging
import lzma
import os
import shutil
import subprocess
import tempfile
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .errors import ConfigError, W2V2Error
from .records import Vocabulary

logger = logging.getLogger("w2v2cli")

#: Python's kenlm module is built with KENLM_MAX_ORDER=6; higher orders would not load.
KENLM_MAX_ORDER = 6
#: LM words that are not words: never unigrams, never text.
LM_SPECIAL_WORDS = frozenset({"<s>", "</s>", "<unk>"})

# pyctcdecode / transformers (Wav2Vec2ProcessorWithLM) folder layout: a model folder holds
# alphabet.json and language_model/{attrs.json, unigrams.txt, <kenlm file>}, nothing else
# in language_model/ (pyctcdecode's LanguageModel.parse_directory_contents insists on 3
# files, the kenlm one ending in .arpa, .bin or .binary).
LM_FOLDER = "language_model"
ATTRS_FILE = "attrs.json"
UNIGRAMS_FILE = "unigrams.txt"
ALPHABET_FILE = "alphabet.json"
LM_SUFFIXES = (".arpa", ".bin", ".binary")

# Defaults when neither the options nor attrs.json say. alpha is pyctcdecode's; beta is 1.0
# rather than pyctcdecode's 1.5 (DecodeOptions documents it); unk offset and boundary
# scoring are pyctcdecode's.
DEFAULT_ALPHA = 0.5
DEFAULT_BETA = 1.0
DEFAULT_UNK_SCORE_OFFSET = -10.0
DEFAULT_SCORE_BOUNDARY = True

_BINARY_MAGIC = b"mmap lm "  # start of every KenLM binary file (lm/binary_format.cc)
_APOSTROPHES = "\u2019\u2018\u02bc\u00b4\u0060\u2032"  # ’ ‘ ʼ ´ ` ′
_PLACEHOLDER_BMP = (0xE000, 0xF900)  # Unicode private use areas: never in real text
_PLACEHOLDER_PLANE15 = 0xF0000
_CASES = ("upper", "lower", "mixed", "none")


# --------------------------------------------------------------------------- tools


def repo_lm_dir() -> Path:
    """The checkout's ``lm/`` folder (exists for source and editable installs only)."""
    return Path(__file__).resolve().parent.parent / "lm"


def find_kenlm_tool(name: str) -> Path:
    """Path of KenLM's ``lmplz`` or ``build_binary``.

    Looks in ``$W2V2_KENLM_BIN`` first (set on purpose, so it wins), then ``lm/bin/`` of the
    checkout, then ``PATH``. Missing → ``ConfigError`` with the command that builds it.
    """
    candidates: list[Path] = []
    env = os.environ.get("W2V2_KENLM_BIN")
    if env:
        candidates.append(Path(env) / name)
    candidates.append(repo_lm_dir() / "bin" / name)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which(name)
    if found:
        return Path(found)
    script = repo_lm_dir() / "build_kenlm.sh"
    how = f"bash {script}" if script.is_file() else "bash lm/build_kenlm.sh (in a w2v2cli checkout)"
    raise ConfigError(
        f"KenLM's {name} was not found (looked in $W2V2_KENLM_BIN, {repo_lm_dir() / 'bin'} "
        f"and PATH). Build it with: {how}"
    )


# --------------------------------------------------------------------------- alphabet


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
    done per character (wav2vec2 CTC vocabularies are characters in practice).
    """
    return frozenset(c for i, t in enumerate(vocab.tokens) if _is_letter_id(vocab, i) for c in t)


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

    Raises ``ConfigError`` for what pyctcdecode would silently misread: word-piece
    vocabularies (tokens starting with ``##`` or ``▁`` switch it to BPE mode), tokens with
    whitespace inside, and duplicate labels.
    """
    if not 0 <= vocab.blank_id < vocab.size:
        raise ConfigError(f"blank id {vocab.blank_id} is outside the vocabulary ({vocab.size})")
    labels: list[str] = []
    folds: list[tuple[int, int]] = []
    boundary: int | None = vocab.delimiter_id
    if boundary is None:
        spaces = [i for i, t in enumerate(vocab.tokens) if t == " " and i != vocab.blank_id]
        boundary = spaces[0] if spaces else None
    seen: dict[str, int] = {}
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
        if label in seen:
            raise ConfigError(
                f"tokens {seen[label]} and {i} both decode to {label!r}: ambiguous vocabulary"
            )
        seen[label] = i
        labels.append(label)
    return DecoderAlphabet(
        labels=tuple(labels),
        folds=tuple(folds),
        chars=alphabet_chars(vocab),
        case=alphabet_case(vocab),
        has_word_boundary=boundary is not None,
    )


def labels_for_pyctcdecode(vocab: Vocabulary) -> list[str]:
    """pyctcdecode labels for our decoder: blank ``""``, delimiter ``" "``, specials as
    private-use characters that never become text (see ``decoder_alphabet``)."""
    return list(decoder_alphabet(vocab).labels)


def hf_alphabet_labels(vocab: Vocabulary) -> list[str]:
    """Labels as transformers' ``Wav2Vec2ProcessorWithLM`` expects them in ``alphabet.json``.

    Its ``get_missing_alphabet_tokens`` wants every tokenizer token, with ``<pad>`` → ``""``,
    the delimiter → ``" "`` and ``<unk>`` → ``⁇``; other specials (``<s>``) stay as they
    are. Only written for other tools; our decoder uses ``labels_for_pyctcdecode``.
    """
    from pyctcdecode.alphabet import UNK_TOKEN, UNK_TOKEN_PTN

    labels = []
    for i, token in enumerate(vocab.tokens):
        if i == vocab.blank_id:
            labels.append("")
        elif i == vocab.delimiter_id:
            labels.append(" ")
        elif UNK_TOKEN_PTN.match(token):
            labels.append(UNK_TOKEN)
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


# --------------------------------------------------------------------------- normalisation


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


def _normalize_words(line: str, chars: frozenset[str] | None, case: str) -> tuple[list[str], int]:
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
    return " ".join(_normalize_words(line, chars, case)[0])


# --------------------------------------------------------------------------- LM files


def _open_text(path: Path) -> IO[str]:
    """Open a text file, transparently decompressing .gz, .bz2 and .xz."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    if suffix == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8")
    if suffix in (".xz", ".lzma"):
        return lzma.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def is_binary_lm(path: Path) -> bool:
    """True for a KenLM binary file, False for ARPA text (checked by content, not name)."""
    with open(path, "rb") as f:
        head = f.read(len(_BINARY_MAGIC))
    return head == _BINARY_MAGIC


def check_lm_file(path: Path) -> str:
    """``"binary"`` or ``"arpa"``; ``ConfigError`` for anything else (cheap: reads the head)."""
    if not path.is_file():
        raise ConfigError(f"language model {path} does not exist")
    if is_binary_lm(path):
        return "binary"
    try:
        with _open_text(path) as f:
            for line in f:
                if line.strip():
                    if line.strip() == "\\data\\":
                        return "arpa"
                    break
    except (UnicodeDecodeError, OSError, EOFError):
        pass
    raise ConfigError(f"{path} is neither a KenLM binary file nor an ARPA file")


def read_arpa_header(path: Path) -> list[int]:
    """N-gram counts per order from an ARPA ``\\data\\`` section."""
    counts: list[int] = []
    with _open_text(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("ngram ") and "=" in line:
                counts.append(int(line.split("=", 1)[1]))
            elif line.startswith("\\1-grams:"):
                break
    return counts


def read_arpa_unigrams(path: Path) -> list[str]:
    """The words of an ARPA file's ``\\1-grams:`` section, without ``<s>``, ``</s>``,
    ``<unk>``. Streams and stops at ``\\2-grams:``, so it is fast on big files.

    Unlike pyctcdecode's reader it accepts unigram lines without a back-off weight (the
    highest order of an order-1 model has none) and space-separated fields.
    """
    words: list[str] = []
    try:
        with _open_text(path) as f:
            inside = False
            for line in f:
                line = line.strip()
                if not inside:
                    inside = line == "\\1-grams:"
                    continue
                if not line:
                    continue
                if line.startswith("\\"):
                    break
                parts = line.split("\t")
                if len(parts) < 2:
                    parts = line.split()
                if len(parts) >= 2 and parts[1] not in LM_SPECIAL_WORDS:
                    words.append(parts[1])
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text: {exc}") from None
    if not words:
        raise ConfigError(f"no unigrams found in {path}; is it an ARPA file?")
    return words


def read_unigrams(path: Path) -> list[str]:
    """A unigram list: one word per line (blank lines and LM specials are skipped)."""
    try:
        with _open_text(path) as f:
            return [w for w in (line.strip() for line in f) if w and w not in LM_SPECIAL_WORDS]
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read unigrams {path}: {exc}") from None


def write_unigrams(words: Iterable[str], path: Path) -> None:
    """One word per line, sorted, UTF-8, written atomically."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for w in sorted(set(words) - LM_SPECIAL_WORDS):
            f.write(w + "\n")
    os.replace(tmp, path)


def _lm_file_in(folder: Path) -> Path | None:
    files = [
        p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith((".", "__")) and p.suffix in LM_SUFFIXES
    ]
    return files[0] if files else None


def find_model_lm(model_dir: Path) -> Path | None:
    """The ``language_model/`` folder of a model folder (transformers' layout), or None.

    Only a folder that really holds a KenLM file counts; an empty one is ignored.
    """
    folder = Path(model_dir) / LM_FOLDER
    if folder.is_dir() and _lm_file_in(folder) is not None:
        return folder
    return None


@dataclass(frozen=True)
class LMSource:
    """A resolved LM: the KenLM file, its unigrams and settings found next to it.

    ``unigrams`` is None when none could be found (binary LM, no list). ``attrs`` holds
    what a ``language_model/attrs.json`` said (alpha, beta, unk_score_offset,
    score_boundary), possibly nothing.
    """

    path: Path
    format: str  # "arpa" | "binary"
    unigrams: tuple[str, ...] | None
    unigrams_from: str
    attrs: dict[str, float | bool] = field(default_factory=dict)


def resolve_lm(lm: Path, unigrams: Path | None = None) -> LMSource:
    """Turn ``--lm`` (a KenLM file, a ``language_model/`` folder or a model folder that has
    one) and ``--unigrams`` into an ``LMSource``. Nothing heavy is loaded.

    Unigrams come from ``unigrams`` if given, else the folder's ``unigrams.txt``, else the
    ARPA file's 1-grams, else a ``unigrams.txt`` beside a binary LM (as ``build_lm``
    writes it); with none, a warning says that results degrade.
    """
    lm = Path(lm)
    attrs: dict[str, float | bool] = {}
    folder_unigrams: Path | None = None
    if lm.is_dir():
        folder = lm if _lm_file_in(lm) is not None else find_model_lm(lm)
        if folder is None:
            raise ConfigError(
                f"{lm} is a folder without a KenLM file (.arpa, .bin, .binary) or a "
                f"{LM_FOLDER}/ folder holding one"
            )
        path = _lm_file_in(folder)
        assert path is not None
        attrs_path = folder / ATTRS_FILE
        if attrs_path.is_file():
            try:
                raw = json.loads(attrs_path.read_text(encoding="utf-8"))
            except (ValueError, OSError) as exc:
                raise ConfigError(f"cannot read {attrs_path}: {exc}") from None
            for key in ("alpha", "beta", "unk_score_offset"):
                if key in raw and raw[key] is not None:
                    attrs[key] = float(raw[key])
            if "score_boundary" in raw and raw["score_boundary"] is not None:
                attrs["score_boundary"] = bool(raw["score_boundary"])
        if (folder / UNIGRAMS_FILE).is_file():
            folder_unigrams = folder / UNIGRAMS_FILE
    else:
        path = lm
    fmt = check_lm_file(path)
    words: list[str] | None
    if unigrams is not None:
        words, source = read_unigrams(Path(unigrams)), str(unigrams)
    elif folder_unigrams is not None:
        words, source = read_unigrams(folder_unigrams), str(folder_unigrams)
    elif fmt == "arpa":
        words, source = read_arpa_unigrams(path), f"{path} (1-grams)"
    elif (path.parent / UNIGRAMS_FILE).is_file():
        words, source = read_unigrams(path.parent / UNIGRAMS_FILE), str(path.parent / UNIGRAMS_FILE)
    else:
        words, source = None, ""
    if words is not None and not words:
        words = None  # an empty list says nothing; pyctcdecode would treat all words as OOV
    if words is None:
        logger.warning(
            "no unigram list for the binary LM %s (give --unigrams, or keep the unigrams.txt "
            "that `w2v2 lm build` writes beside it): beam search will rate every word as "
            "unknown while spelling it, so results degrade, and the LM's case cannot be "
            "checked against the model's",
            path,
        )
    return LMSource(
        path=path,
        format=fmt,
        unigrams=None if words is None else tuple(words),
        unigrams_from=source,
        attrs=attrs,
    )


# --------------------------------------------------------------------------- building


@dataclass(frozen=True)
class LMBuildResult:
    """What ``build_lm`` made, for the summary and for scripts."""

    lm_path: Path
    format: str  # "binary" | "arpa"
    order: int
    unigrams_path: Path
    ngram_counts: tuple[int, ...]
    lines: int  # non-empty normalised lines (sentences) in the corpus
    words: int  # words kept
    dropped_words: int  # words dropped by normalisation
    case: str  # case the text was folded to
    language_model_dir: Path | None
    seconds: float


def _iter_lines(files: Sequence[Path]) -> Iterator[str]:
    for path in files:
        try:
            with _open_text(Path(path)) as f:
                yield from f
        except FileNotFoundError:
            raise ConfigError(f"text file {path} does not exist") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path} is not UTF-8 text: {exc}") from None
        except (OSError, EOFError) as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from None


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_memory(corpus_bytes: int) -> str:
    """lmplz/build_binary ``-S``: about 10× the corpus, at least 64 MB (lmplz's vocabulary
    hash alone needs ~25 MB), at most 20% of RAM (the machine is shared; lmplz sorts on
    disk beyond that). lmplz's own default of 80% would touch gigabytes for a toy corpus.
    """
    mb = max(64, corpus_bytes * 10 // 2**20)
    ram = _physical_memory()
    if ram:
        mb = min(mb, max(64, ram // 5 // 2**20))
    return f"{mb}M"


def _run_tool(args: list[str], what: str) -> None:
    logger.debug("running %s", " ".join(args))
    proc = subprocess.run(args, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-6:])
        raise W2V2Error(f"{what} failed (exit {proc.returncode}):\n{tail}")


def _check_build_args(order: int, prune: Sequence[int] | None) -> list[int]:
    if not 1 <= order <= KENLM_MAX_ORDER:
        raise ConfigError(
            f"order must be between 1 and {KENLM_MAX_ORDER} (the kenlm Python module's "
            f"maximum), not {order}"
        )
    thresholds = [int(p) for p in prune or []]
    if thresholds:
        if len(thresholds) > order:
            raise ConfigError(f"--prune has {len(thresholds)} thresholds for an order-{order} LM")
        if any(p < 0 for p in thresholds):
            raise ConfigError("prune thresholds must not be negative")
        if any(b < a for a, b in zip(thresholds, thresholds[1:], strict=False)):
            raise ConfigError(
                "prune thresholds must not decrease from one order to the next (lmplz "
                "refuses: it would remove prefixes of kept n-grams)"
            )
    return thresholds


def write_language_model_dir(
    model_dir: Path,
    lm_path: Path,
    unigrams_path: Path,
    vocab: Vocabulary | None,
    *,
    alpha: float = DEFAULT_ALPHA,
    beta: float = DEFAULT_BETA,
    unk_score_offset: float = DEFAULT_UNK_SCORE_OFFSET,
    score_boundary: bool = DEFAULT_SCORE_BOUNDARY,
) -> Path:
    """Write ``model_dir/language_model/`` (attrs.json, unigrams.txt, the KenLM file) and,
    with a vocabulary, ``model_dir/alphabet.json``: the layout pyctcdecode's
    ``BeamSearchDecoderCTC.load_from_dir`` and transformers' ``Wav2Vec2ProcessorWithLM``
    read. An existing ``language_model/`` is refused rather than replaced.
    """
    model_dir = Path(model_dir)
    target = model_dir / LM_FOLDER
    if target.exists():
        raise ConfigError(f"{target} already exists; remove it first to replace it")
    if lm_path.suffix not in LM_SUFFIXES:
        raise ConfigError(
            f"the LM file name must end in {', '.join(LM_SUFFIXES)} for {LM_FOLDER}/ "
            f"(pyctcdecode's rule), not {lm_path.name!r}"
        )
    model_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".language_model.", dir=model_dir))
    try:
        attrs = {
            "alpha": float(alpha),
            "beta": float(beta),
            "unk_score_offset": float(unk_score_offset),
            "score_boundary": bool(score_boundary),
        }
        (tmp / ATTRS_FILE).write_text(json.dumps(attrs), encoding="utf-8")
        shutil.copyfile(unigrams_path, tmp / UNIGRAMS_FILE)
        shutil.copyfile(lm_path, tmp / lm_path.name)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if vocab is not None:
        alphabet = {"labels": hf_alphabet_labels(vocab), "is_bpe": False}
        (model_dir / ALPHABET_FILE).write_text(json.dumps(alphabet), encoding="utf-8")
    else:
        logger.warning(
            "no model vocabulary given: %s not written; transformers' "
            "Wav2Vec2ProcessorWithLM needs it (w2v2 itself does not)",
            model_dir / ALPHABET_FILE,
        )
    return target


def build_lm(
    text_files: Sequence[Path],
    out_path: Path,
    order: int,
    prune: list[int] | None = None,
    vocab: Vocabulary | None = None,
    binary: bool = True,
    model_dir_out: Path | None = None,
    *,
    memory: str | None = None,
    tmp_dir: Path | None = None,
) -> LMBuildResult:
    """Build a KenLM n-gram model for a CTC model from plain text files.

    Lines are normalised for the model's alphabet (``normalize_for_alphabet``; without a
    vocabulary only punctuation and numbers go and case is kept), then ``lmplz -o ORDER
    --discount_fallback`` (so tiny corpora work) makes an ARPA file, and ``build_binary
    trie`` a binary one unless ``binary=False``. ``unigrams.txt`` (the LM's words without
    ``<s>``, ``</s>``, ``<unk>``) is written beside ``out_path``, and a ``language_model/``
    folder into ``model_dir_out`` when given. Outputs appear atomically; temporary files
    live in ``tmp_dir`` (default: the system's).
    """
    started = time.monotonic()
    thresholds = _check_build_args(order, prune)
    files = [Path(p) for p in text_files]
    if not files:
        raise ConfigError("no text files given")
    out_path = Path(out_path)
    if binary and out_path.suffix == ".arpa":
        raise ConfigError(f"{out_path} ends in .arpa but a binary LM was asked for; name it .bin")
    lmplz = find_kenlm_tool("lmplz")
    build_binary = find_kenlm_tool("build_binary") if binary else None
    chars = None if vocab is None else alphabet_chars(vocab)
    case = "none" if vocab is None else alphabet_case(vocab)
    if vocab is not None and not chars:
        raise ConfigError("the model's vocabulary has no letters to spell words with")
    out_path.parent.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="w2v2-lm-", dir=tmp_dir) as tmp_name:
        tmp = Path(tmp_name)
        corpus = tmp / "corpus.txt"
        lines = words = dropped = 0
        with open(corpus, "w", encoding="utf-8") as out:
            for line in _iter_lines(files):
                kept, n_dropped = _normalize_words(line, chars, case)
                dropped += n_dropped
                if kept:
                    out.write(" ".join(kept) + "\n")
                    lines += 1
                    words += len(kept)
        if words == 0:
            hint = " Is the text in the model's alphabet?" if vocab is not None else ""
            raise ConfigError(f"no words left in the text after normalisation.{hint}")
        mem = memory or default_memory(corpus.stat().st_size)
        arpa = tmp / "lm.arpa"
        args = [str(lmplz), "-o", str(order), "--discount_fallback", "-S", mem, "-T", str(tmp)]
        if thresholds:
            args += ["--prune", *map(str, thresholds)]
        _run_tool([*args, "--text", str(corpus), "--arpa", str(arpa)], "lmplz")
        counts = tuple(read_arpa_header(arpa))
        unigrams = read_arpa_unigrams(arpa)

        partial = out_path.with_name(f".{out_path.name}.partial")
        if build_binary is not None:
            _run_tool(
                [str(build_binary), "-S", mem, "-T", str(tmp), "trie", str(arpa), str(partial)],
                "build_binary",
            )
        else:
            shutil.move(str(arpa), partial)
        os.replace(partial, out_path)
    unigrams_path = out_path.parent / UNIGRAMS_FILE
    write_unigrams(unigrams, unigrams_path)
    lm_dir = None
    if model_dir_out is not None:
        lm_dir = write_language_model_dir(Path(model_dir_out), out_path, unigrams_path, vocab)
    return LMBuildResult(
        lm_path=out_path,
        format="binary" if binary else "arpa",
        order=order,
        unigrams_path=unigrams_path,
        ngram_counts=counts,
        lines=lines,
        words=words,
        dropped_words=dropped,
        case=case,
        language_model_dir=lm_dir,
        seconds=time.monotonic() - started,
    )
