"""KenLM files and their word lists, checked cheaply: the format (by content), ARPA headers
and 1-grams, unigram lists, the ``language_model/`` layout's names and the default weights.
Every problem with a file is an ``LMError`` naming it. (``source.resolve_lm`` puts these
together into what an ``--lm`` argument points at.)

Unigram lists. pyctcdecode needs the LM's words to score partial words; an ARPA file holds
them, a binary one does not. ``w2v2 lm build`` therefore writes the list beside the LM as
``NAME.unigrams.txt`` (``4gram.bin`` → ``4gram.bin.unigrams.txt``): one list per LM, so two
LMs built into one folder never share one. The older shared name ``unigrams.txt`` is still
read beside a binary LM that has no list of its own. Inside a ``language_model/`` folder the
list is ``unigrams.txt``, the name pyctcdecode and transformers expect there.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from ..errors import LMError
from ..fsutil import atomic_file
from .alphabet import LM_SPECIAL_WORDS

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


def open_text(path: Path) -> IO[str]:
    """Open a UTF-8 text file, transparently decompressing .gz, .bz2 and .xz."""
    suffix = path.suffix.lower()
    if suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    if suffix == ".bz2":
        return bz2.open(path, "rt", encoding="utf-8")
    if suffix in (".xz", ".lzma"):
        return lzma.open(path, "rt", encoding="utf-8")
    return open(path, encoding="utf-8")


def unigrams_path_for(lm_path: Path) -> Path:
    """Where ``lm build`` writes the word list of ``lm_path``: ``NAME.unigrams.txt``."""
    return lm_path.with_name(f"{lm_path.name}.{UNIGRAMS_FILE}")


def is_binary_lm(path: Path) -> bool:
    """True for a KenLM binary file, False for ARPA text (checked by content, not name)."""
    with open(path, "rb") as f:
        head = f.read(len(_BINARY_MAGIC))
    return head == _BINARY_MAGIC


def check_lm_file(path: Path) -> str:
    """``"binary"`` or ``"arpa"``; ``LMError`` for anything else (cheap: reads the head)."""
    if not path.is_file():
        raise LMError(path, "no such language model file")
    try:
        if is_binary_lm(path):
            return "binary"
        with open_text(path) as f:
            for line in f:
                if line.strip():
                    if line.strip() == "\\data\\":
                        return "arpa"
                    break
    except (UnicodeDecodeError, OSError, EOFError, ValueError):
        pass
    raise LMError(path, "neither a KenLM binary file nor an ARPA file")


def read_arpa_header(path: Path) -> list[int]:
    """N-gram counts per order from an ARPA ``\\data\\`` section."""
    counts: list[int] = []
    with open_text(path) as f:
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
        with open_text(path) as f:
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
        raise LMError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError) as exc:
        raise LMError(path, f"cannot read: {exc}") from None
    if not words:
        raise LMError(path, "no unigrams found; is it an ARPA file?")
    return words


def read_unigrams(path: Path) -> list[str]:
    """A unigram list: one word per line (blank lines and LM specials are skipped)."""
    try:
        with open_text(path) as f:
            return [w for w in (line.strip() for line in f) if w and w not in LM_SPECIAL_WORDS]
    except UnicodeDecodeError as exc:
        raise LMError(path, f"not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except (OSError, EOFError) as exc:
        raise LMError(path, f"cannot read the unigram list: {exc}") from None


def write_unigrams(words: Iterable[str], path: Path) -> None:
    """One word per line, sorted, UTF-8, written atomically."""
    with atomic_file(path) as f:
        for w in sorted(set(words) - LM_SPECIAL_WORDS):
            f.write(w + "\n")


def lm_file_in(folder: Path) -> Path | None:
    """The KenLM file of a ``language_model/`` folder (by suffix), or None."""
    try:
        entries = sorted(folder.iterdir())
    except OSError:
        return None
    files = [
        p
        for p in entries
        if p.is_file() and not p.name.startswith((".", "__")) and p.suffix in LM_SUFFIXES
    ]
    return files[0] if files else None


def find_model_lm(model_dir: Path) -> Path | None:
    """The ``language_model/`` folder of a model folder (transformers' layout), or None.

    Only a folder that really holds a KenLM file counts; an empty one is ignored.
    """
    folder = Path(model_dir) / LM_FOLDER
    if folder.is_dir() and lm_file_in(folder) is not None:
        return folder
    return None
