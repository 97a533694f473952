"""Building KenLM n-gram models for a CTC model: ``w2v2 lm build`` and ``lm/build_kenlm.sh``.

- **Tools.** ``lmplz`` and ``build_binary`` are looked up in ``$W2V2_KENLM_BIN`` (an explicit
  choice wins), then in the checkout's ``lm/bin/`` (where ``lm/build_kenlm.sh`` puts them),
  then on ``PATH``. Missing or failing tools are a ``ToolError``.
- **Text** is normalised for the model's alphabet first (``text.py``).
- **Outputs**: the LM file, its ``NAME.unigrams.txt`` and optionally a ``language_model/``
  folder, each checked before the build starts and written atomically (``fsutil``).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, OutputError, ToolError
from ..fsutil import atomic_copy, check_output_dir, check_output_file
from ..records import Vocabulary
from .alphabet import alphabet_case, alphabet_chars
from .files import (
    LM_FOLDER,
    open_text,
    read_arpa_header,
    read_arpa_unigrams,
    unigrams_path_for,
    write_unigrams,
)
from .folder import write_language_model_dir
from .text import normalize_words

logger = logging.getLogger("w2v2cli")

#: Both beam-search engines' KenLM (inside ctc-beam-decoder's wheel, and Python's kenlm
#: module) are built with KENLM_MAX_ORDER=6; higher orders would not load.
KENLM_MAX_ORDER = 6


def repo_lm_dir() -> Path:
    """The checkout's ``lm/`` folder (exists for source and editable installs only)."""
    return Path(__file__).resolve().parent.parent.parent / "lm"


def find_kenlm_tool(name: str) -> Path:
    """Path of KenLM's ``lmplz`` or ``build_binary``.

    Looks in ``$W2V2_KENLM_BIN`` first (set on purpose, so it wins), then ``lm/bin/`` of the
    checkout, then ``PATH``. Missing → ``ToolError`` with the command that builds it.
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
    raise ToolError(
        f"KenLM's {name} was not found (looked in $W2V2_KENLM_BIN, {repo_lm_dir() / 'bin'} "
        f"and PATH). Build it with: {how}"
    )


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
            with open_text(Path(path)) as f:
                yield from f
        except FileNotFoundError:
            raise ConfigError(f"text file {path} does not exist") from None
        except UnicodeDecodeError as exc:
            reason = f"not UTF-8 text ({exc.reason} at byte {exc.start})"
            raise ConfigError(f"{path}: {reason}") from None
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
    """Run a KenLM tool; a failure is a one-line ``ToolError`` with its last stderr line
    (the whole tail is logged with ``-v``)."""
    logger.debug("running %s", " ".join(args))
    try:
        proc = subprocess.run(args, capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise ToolError(f"cannot run {what} ({args[0]}): {exc.strerror or exc}") from None
    if proc.returncode != 0:
        lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
        logger.debug("%s stderr:\n%s", what, "\n".join(lines[-20:]))
        last = lines[-1].strip() if lines else "no message"
        raise ToolError(f"{what} failed (exit {proc.returncode}): {last}")


def _check_build_args(order: int, prune: Sequence[int] | None) -> list[int]:
    if not 1 <= order <= KENLM_MAX_ORDER:
        raise ConfigError(
            f"order must be between 1 and {KENLM_MAX_ORDER} (the most the beam-search "
            f"engines' KenLM loads), not {order}"
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
    trie`` a binary one unless ``binary=False``. ``NAME.unigrams.txt`` (the LM's words
    without ``<s>``, ``</s>``, ``<unk>``) is written beside ``out_path``, and a
    ``language_model/`` folder into ``model_dir_out`` when given. Output paths are checked
    before any work; outputs appear atomically; temporary files live in ``tmp_dir``
    (default: the system's).
    """
    started = time.monotonic()
    thresholds = _check_build_args(order, prune)
    files = [Path(p) for p in text_files]
    if not files:
        raise ConfigError("no text files given")
    out_path = Path(out_path)
    if binary and out_path.suffix == ".arpa":
        raise ConfigError(f"{out_path} ends in .arpa but a binary LM was asked for; name it .bin")
    check_output_file(out_path, "LM file")
    if model_dir_out is not None:
        check_output_dir(Path(model_dir_out), "model folder")
        if (Path(model_dir_out) / LM_FOLDER).exists():
            raise OutputError(
                f"{Path(model_dir_out) / LM_FOLDER} already exists; remove it first to replace it"
            )
    lmplz = find_kenlm_tool("lmplz")
    build_binary = find_kenlm_tool("build_binary") if binary else None
    chars = None if vocab is None else alphabet_chars(vocab)
    case = "none" if vocab is None else alphabet_case(vocab)
    if vocab is not None and not chars:
        raise ConfigError("the model's vocabulary has no letters to spell words with")

    with tempfile.TemporaryDirectory(prefix="w2v2-lm-", dir=tmp_dir) as tmp_name:
        tmp = Path(tmp_name)
        corpus = tmp / "corpus.txt"
        lines = words = dropped = 0
        with open(corpus, "w", encoding="utf-8") as out:
            for line in _iter_lines(files):
                kept, n_dropped = normalize_words(line, chars, case)
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

        unigrams_path = unigrams_path_for(out_path)
        if build_binary is not None:
            binary_tmp = tmp / "lm.bin"
            _run_tool(
                [str(build_binary), "-S", mem, "-T", str(tmp), "trie", str(arpa), str(binary_tmp)],
                "build_binary",
            )
            built = binary_tmp
        else:
            built = arpa
        write_unigrams(unigrams, unigrams_path)
        atomic_copy(built, out_path)
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
