"""The engines that run CTC beam search for ``decoding.beam``: ctc-beam-decoder or pyctcdecode.

Both take the same labels, the same KenLM file and unigram list, the same weights and
pruning settings, and give the best beam's words with their frame ranges; everything around
the search (checks, special-token folding, letter case, times and confidences) is
``beam.py``'s and the same for both.

- **ctc-beam-decoder** (C++, KenLM inside its wheel, needs only numpy): a port of
  pyctcdecode made to give its results, several times faster. It has wheels for Linux
  x86-64 with glibc >= 2.35, macOS 14+ on arm64 and Windows x64 only, and pyproject's
  environment markers install it exactly there.
- **pyctcdecode** (pure Python, with the ``kenlm`` module for LMs): the reference, and the
  engine where ctc-beam-decoder has no wheel. It pins ``numpy<2``.

**Choosing.** ``resolve_engine("auto")`` takes ``$W2V2_BEAM_ENGINE`` when it is set (so CI
can force the fallback for a whole test run), else the first engine that can run here:
ctc-beam-decoder, then pyctcdecode. It is resolved once, in the parent, and travels in the
decoder's settings, so worker processes use the same engine.

**Changing alpha and beta.** pyctcdecode changes them in place (``reset_params``).
ctc-beam-decoder's API takes them only when a decoder is built, so ``set_weights`` builds
a new one: a binary LM is memory-mapped again (pages already in the page cache; ~10 ms
for an 8 MB LM here), an ARPA file is parsed again, which is why binary LMs are
recommended for ``lm tune``.

**Quiet.** KenLM prints a progress bar and a "build a binary" note on stderr while it reads
an ARPA file. The kenlm module is told not to; inside ctc-beam-decoder it cannot be, so
stderr (file descriptor 2) points at /dev/null while such a decoder is built. A load
failure's reason still reaches the user, through the exception.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from ..errors import ConfigError, LMError
from ..options import BEAM_ENGINES

logger = logging.getLogger("w2v2cli")

#: The engines, in the order ``auto`` tries them.
ENGINES = tuple(e for e in BEAM_ENGINES if e != "auto")
#: Environment variable that ``auto`` obeys (``auto``, or one of ``ENGINES``).
ENGINE_ENV = "W2V2_BEAM_ENGINE"

#: ``(word, first frame, end frame)``, end exclusive: the best beam's words.
WordFrames = list[tuple[str, int, int]]


@dataclass(frozen=True)
class LMSpec:
    """A KenLM model as an engine loads it: checked by ``beam.beam_settings`` already."""

    path: str
    format: str  # "arpa" | "binary"
    unigrams: tuple[str, ...] | None  # None: no word list (every word prefix counts as unknown)
    alpha: float
    beta: float
    unk_score_offset: float
    score_boundary: bool


@dataclass(frozen=True)
class SearchParams:
    """Per-decode settings, with pyctcdecode's meaning (hotwords in the labels' case)."""

    beam_width: int
    beam_prune_logp: float
    token_min_logp: float
    hotwords: tuple[str, ...]
    hotword_weight: float


class Search(Protocol):
    """One engine's decoder: labels and LM fixed, weights changeable."""

    def set_weights(self, alpha: float, beta: float) -> None: ...

    def word_frames(self, log_probs: np.ndarray, params: SearchParams) -> WordFrames: ...

    def close(self) -> None: ...


# --------------------------------------------------------------------------- choosing


@functools.cache
def engine_problem(name: str, needs_lm: bool) -> str | None:
    """Why engine ``name`` cannot run here (with an LM when ``needs_lm``), or None."""
    if name == "ctc-beam-decoder":
        try:
            import ctc_beam_decoder  # optional engine: imported here, when first asked for
        except ImportError:
            return (
                "not installed (pip install ctc-beam-decoder; it has wheels for Linux x86-64 "
                "with glibc >= 2.35, macOS 14+ on arm64 and Windows x64)"
            )
        try:
            has_kenlm = ctc_beam_decoder.has_kenlm()  # loads its library: a broken install fails
        except (OSError, RuntimeError) as exc:
            return f"its library does not load: {' '.join(str(exc).split())}"
        if needs_lm and not has_kenlm:
            return "this build of it has no KenLM support"
        return None
    if name == "pyctcdecode":
        try:
            # optional engine: imported here, when first asked for
            import pyctcdecode  # noqa: F401
        except ImportError:
            return "not installed (pip install pyctcdecode kenlm)"
        if needs_lm:
            try:
                # optional (pyctcdecode's LM): imported here, when first asked for
                import kenlm  # noqa: F401
            except ImportError:
                return "the kenlm Python module is not installed (pip install kenlm)"
        return None
    raise ValueError(f"unknown beam search engine {name!r}")


def _check_name(name: str, where: str) -> str:
    name = name.strip()
    if name != "auto" and name not in ENGINES:
        raise ConfigError(f"{where} must be auto, {' or '.join(ENGINES)}, not {name!r}")
    return name


def resolve_engine(requested: str = "auto", *, needs_lm: bool) -> str:
    """The engine to use: ``requested``, or for ``auto`` the one ``$W2V2_BEAM_ENGINE``
    names, else the first of ``ENGINES`` that can run here. ``ConfigError`` when the chosen
    engine (or, for ``auto``, every engine) cannot run, saying what to install."""
    name = _check_name(requested, "the beam search engine")
    if name == "auto":
        name = _check_name(os.environ.get(ENGINE_ENV, "") or "auto", ENGINE_ENV)
    if name != "auto":
        problem = engine_problem(name, needs_lm)
        if problem is not None:
            raise ConfigError(f"beam search engine {name}: {problem}")
        return name
    problems = []
    for candidate in ENGINES:
        problem = engine_problem(candidate, needs_lm)
        if problem is None:
            if problems and "not installed" not in problems[0]:
                # Installed but broken is worth a line; merely absent is the normal fallback.
                logger.warning("%s; beam search runs on %s instead", problems[0], candidate)
            return candidate
        problems.append(f"{candidate}: {problem}")
    raise ConfigError("beam search needs an engine, and none can run here: " + "; ".join(problems))


def open_search(engine: str, labels: Sequence[str], lm: LMSpec | None) -> Search:
    """A decoder of ``engine`` (resolved) for ``labels`` (blank ``""``, boundary ``" "``)."""
    if engine == "ctc-beam-decoder":
        return CtcBeamDecoderSearch(labels, lm)
    if engine == "pyctcdecode":
        return PyctcdecodeSearch(labels, lm)
    raise ValueError(f"unknown beam search engine {engine!r}")


# --------------------------------------------------------------------------- helpers


@contextmanager
def _stderr_silenced(active: bool) -> Iterator[None]:
    """File descriptor 2 points at /dev/null inside (for C++ code that prints there)."""
    if not active:
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no stderr at all: nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


#: KenLM's exception prefix, "<source file>:<line> in <function> threw <Exception>.":
#: the build machine's paths say nothing to a user.
_KENLM_WHERE = re.compile(r"\S+\.(?:cc|hh|cpp|h):\d+ in .*? threw \w+\.\s*")
_KENLM_MODULE = re.compile(r"^Cannot read model '.*?' \(?(.*?)\)?$")


def kenlm_reason(exc: BaseException, path: str = "") -> str:
    """A KenLM load failure as one short line."""
    text = str(exc)
    prefix = f"could not load language model {path}:"
    if path and text.startswith(prefix):
        text = text[len(prefix) :]
    text = " ".join(_KENLM_WHERE.sub("", text).split())
    wrapped = _KENLM_MODULE.match(text)  # the kenlm module's "Cannot read model 'x' (...)"
    if wrapped:
        text = wrapped.group(1).strip()
    return text or type(exc).__name__


# --------------------------------------------------------------------------- ctc-beam-decoder


class CtcBeamDecoderSearch:
    """ctc-beam-decoder: weights are fixed per decoder, so ``set_weights`` builds a new one."""

    def __init__(self, labels: Sequence[str], lm: LMSpec | None) -> None:
        self._labels = list(labels)
        self._lm = lm
        self._weights = (lm.alpha, lm.beta) if lm is not None else (0.0, 0.0)
        self._decoder: Any = self._build(*self._weights)

    def _build(self, alpha: float, beta: float) -> Any:
        from ctc_beam_decoder import BeamSearchDecoder  # optional engine: deferred to first use

        lm = self._lm
        if lm is None:
            return BeamSearchDecoder(self._labels)
        try:
            with _stderr_silenced(lm.format == "arpa"):
                return BeamSearchDecoder(
                    self._labels,
                    kenlm_model_path=lm.path,
                    unigrams=None if lm.unigrams is None else list(lm.unigrams),
                    alpha=float(alpha),
                    beta=float(beta),
                    unk_score_offset=lm.unk_score_offset,
                    score_boundary=lm.score_boundary,
                )
        except (OSError, RuntimeError, ValueError) as exc:
            raise LMError(lm.path, f"KenLM cannot load it: {kenlm_reason(exc, lm.path)}") from None

    def set_weights(self, alpha: float, beta: float) -> None:
        weights = (float(alpha), float(beta))
        if self._lm is None or weights == self._weights:
            return
        self._decoder = self._build(*weights)  # the old one is freed when dropped
        self._weights = weights

    def word_frames(self, log_probs: np.ndarray, params: SearchParams) -> WordFrames:
        return best_word_frames(self._decoder, log_probs, params)

    def close(self) -> None:
        self._decoder = None


def best_word_frames(decoder: Any, log_probs: np.ndarray, params: SearchParams) -> WordFrames:
    """The best beam's words and frames from either engine: ctc-beam-decoder keeps
    pyctcdecode's ``decode_beams`` signature and five-tuple results."""
    beams = decoder.decode_beams(
        log_probs,
        beam_width=params.beam_width,
        beam_prune_logp=params.beam_prune_logp,
        token_min_logp=params.token_min_logp,
        prune_history=True,  # only the best beam is used, as in pyctcdecode's decode()
        hotwords=list(params.hotwords) or None,
        hotword_weight=params.hotword_weight,
    )
    if not beams:  # nothing decodable: ctc-beam-decoder returns no beam at all
        return []
    return [(word, int(start), int(end)) for word, (start, end) in beams[0][2]]


# --------------------------------------------------------------------------- pyctcdecode


def _kenlm_model(path: str) -> Any:
    """Load a KenLM model with the kenlm module; binary files are memory-mapped, never
    copied per process, and nothing is printed."""
    import kenlm  # optional (pyctcdecode's LM): deferred to first use

    config = kenlm.Config()
    config.load_method = kenlm.LoadMethod.POPULATE_OR_LAZY
    config.show_progress = False
    config.arpa_complain = kenlm.ARPALoadComplain.NONE
    try:
        return kenlm.Model(path, config)
    except (OSError, RuntimeError, ValueError) as exc:
        raise LMError(path, f"KenLM cannot load it: {kenlm_reason(exc)}") from None


class PyctcdecodeSearch:
    """pyctcdecode's ``BeamSearchDecoderCTC``; weights change in place (``reset_params``),
    and its score caches live per ``decode_beams`` call, so nothing stale survives."""

    def __init__(self, labels: Sequence[str], lm: LMSpec | None) -> None:
        # optional engine: deferred to first use
        from pyctcdecode.alphabet import Alphabet
        from pyctcdecode.decoder import BeamSearchDecoderCTC

        language_model = None
        if lm is not None:
            from pyctcdecode.language_model import LanguageModel  # deferred, as above

            language_model = LanguageModel(
                _kenlm_model(lm.path),
                None if lm.unigrams is None else list(lm.unigrams),
                alpha=lm.alpha,
                beta=lm.beta,
                unk_score_offset=lm.unk_score_offset,
                score_boundary=lm.score_boundary,
            )
        # Its alphabet warns that a BPE alphabet has no "▁⁇▁" (unknown) label: our labels
        # never have one, since specials are folded into the blank (lm.alphabet).
        log = logging.getLogger("pyctcdecode.alphabet")
        level = log.level
        log.setLevel(logging.ERROR)
        try:
            alphabet = Alphabet.build_alphabet(list(labels))
        finally:
            log.setLevel(level)
        self._decoder = BeamSearchDecoderCTC(alphabet, language_model)

    def set_weights(self, alpha: float, beta: float) -> None:
        # pyctcdecode checks isinstance(alpha, float): ints (from a grid like 0,1) fail.
        self._decoder.reset_params(alpha=float(alpha), beta=float(beta))

    def word_frames(self, log_probs: np.ndarray, params: SearchParams) -> WordFrames:
        return best_word_frames(self._decoder, log_probs, params)

    def close(self) -> None:
        # pyctcdecode keeps LMs in a class-level dict until cleaned up by hand.
        self._decoder.cleanup()
