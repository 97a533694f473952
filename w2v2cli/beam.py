"""Beam search with an optional KenLM language model (pyctcdecode), in-process or in a pool.

``BeamDecoder`` is built once per run from the model's ``Vocabulary`` and the
``DecodeOptions``. Everything that can be wrong with the LM (missing file, wrong format,
wrong case, wrong script) is found in the constructor, before any audio is read. Words,
times and confidences follow ``timing.py``, so greedy and beam transcripts measure the
same things.

Parallelism: with ``workers`` > 1 a process pool is created once per decoder, on the first
``submit``; each worker builds its own pyctcdecode decoder once, in the pool's
initializer, and then decodes whole files. The pool uses the ``forkserver`` start method
(``spawn`` where there is none): the parent has torch's thread pools (and maybe CUDA)
running, and forking a process with live threads can deadlock the child or break CUDA;
forkserver children come from a clean single-threaded server, start faster than spawned
ones and never import torch. Binary LMs are memory-mapped (kenlm's ``POPULATE_OR_LAZY``),
so N workers share one copy of the model in the page cache; ARPA files are parsed by
every worker, which is why binary LMs are recommended.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .decoders import Decoder
from .errors import ConfigError, W2V2Error
from .lm import (
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    DEFAULT_SCORE_BOUNDARY,
    DEFAULT_UNK_SCORE_OFFSET,
    LMSource,
    check_lm_spelling,
    decoder_alphabet,
    fold_case,
    lm_case_conversion,
    resolve_lm,
    text_case,
)
from .options import DecodeOptions
from .records import Emissions, Transcript, Vocabulary
from .timing import file_confidence, words_from_frame_spans

logger = logging.getLogger("w2v2cli")

#: pyctcdecode clips log-probabilities at log(1e-15); silenced columns sit there.
_FLOOR = float(np.log(1e-15))


def start_method() -> str:
    """The multiprocessing start method for decode workers (see the module docstring)."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


@dataclass(frozen=True)
class BeamSettings:
    """Everything a decoder needs, resolved and validated, small enough to send to workers."""

    vocabulary: Vocabulary
    labels: tuple[str, ...]
    folds: tuple[tuple[int, int], ...]
    lm_path: str | None
    lm_format: str | None
    unigrams: tuple[str, ...] | None
    lm_lookup_case: str | None  # None, or "upper"/"lower": map words before LM lookups
    alpha: float
    beta: float
    unk_score_offset: float
    score_boundary: bool
    beam_width: int
    beam_prune_logp: float
    token_min_logp: float
    hotwords: tuple[str, ...]
    hotword_weight: float


def _kenlm_model(path: str) -> Any:
    """Load a KenLM model; binary files are memory-mapped, never copied per process."""
    import kenlm

    config = kenlm.Config()
    config.load_method = kenlm.LoadMethod.POPULATE_OR_LAZY
    # No progress bars or "build a binary" notes on stderr from every worker; we log our own.
    config.show_progress = False
    config.arpa_complain = kenlm.ARPALoadComplain.NONE
    try:
        return kenlm.Model(path, config)
    except (OSError, RuntimeError) as exc:
        raise ConfigError(f"cannot load the language model {path}: {exc}") from None


def _language_model(settings: BeamSettings) -> Any:
    """pyctcdecode's ``LanguageModel``, with case-mapped lookups when the LM's case differs
    from the model's (the LM side is converted; see ``lm.lm_case_conversion``)."""
    from pyctcdecode.language_model import LanguageModel

    assert settings.lm_path is not None
    kwargs = {
        "alpha": settings.alpha,
        "beta": settings.beta,
        "unk_score_offset": settings.unk_score_offset,
        "score_boundary": settings.score_boundary,
    }
    model = _kenlm_model(settings.lm_path)
    unigrams = list(settings.unigrams) if settings.unigrams is not None else None
    if settings.lm_lookup_case is None:
        return LanguageModel(model, unigrams, **kwargs)
    case = settings.lm_lookup_case

    class CaseMappedLanguageModel(LanguageModel):  # type: ignore[misc]
        """Looks words and word prefixes up in the LM's case; beams stay in the model's."""

        def score_partial_token(self, partial_token: str) -> float:
            return float(super().score_partial_token(fold_case(partial_token, case)))

        def score(self, prev_state: Any, word: str, is_last_word: bool = False) -> Any:
            return super().score(prev_state, fold_case(word, case), is_last_word=is_last_word)

    return CaseMappedLanguageModel(model, unigrams, **kwargs)


class _Core:
    """One pyctcdecode decoder and the code around it; lives in the parent or a worker."""

    def __init__(self, settings: BeamSettings) -> None:
        from pyctcdecode.alphabet import Alphabet
        from pyctcdecode.decoder import BeamSearchDecoderCTC

        self.settings = settings
        language_model = _language_model(settings) if settings.lm_path else None
        alphabet = Alphabet.build_alphabet(list(settings.labels))
        self._decoder = BeamSearchDecoderCTC(alphabet, language_model)

    def decode(self, emissions: Emissions) -> Transcript:
        s = self.settings
        if emissions.num_frames == 0:
            return Transcript(text="", words=(), duration=emissions.duration, decoder="beam")
        log_probs = np.array(emissions.log_probs, dtype=np.float32, copy=True)
        if log_probs.ndim != 2 or log_probs.shape[1] != len(s.labels):
            raise W2V2Error(
                f"emissions have shape {log_probs.shape}, the vocabulary has {len(s.labels)} ids"
            )
        for src, dst in s.folds:
            # Specials count as blank (extra boundary tokens as the boundary), as in greedy
            # decoding; they can then never be chosen.
            log_probs[:, dst] = np.logaddexp(log_probs[:, dst], log_probs[:, src])
            log_probs[:, src] = _FLOOR
        beams = self._decoder.decode_beams(
            log_probs,
            beam_width=s.beam_width,
            beam_prune_logp=s.beam_prune_logp,
            token_min_logp=s.token_min_logp,
            prune_history=True,  # only the best beam is used, as pyctcdecode's decode()
            hotwords=list(s.hotwords) or None,
            hotword_weight=s.hotword_weight,
        )
        word_frames = beams[0][2] if beams else []
        spans = [(word, start, end) for word, (start, end) in word_frames]
        words = words_from_frame_spans(spans, emissions, s.vocabulary)
        return Transcript(
            text=" ".join(w.text for w in words),
            words=words,
            duration=emissions.duration,
            confidence=file_confidence(words),
            decoder="beam",
        )

    def close(self) -> None:
        # pyctcdecode keeps LMs in a class-level dict until cleaned up by hand.
        self._decoder.cleanup()


# Worker-process state: one decoder per worker, built by the pool's initializer.
_WORKER_CORE: _Core | None = None
_WORKER_ERROR: W2V2Error | None = None


def _worker_init(settings: BeamSettings) -> None:
    """Build the worker's decoder once. Errors are kept and raised per task, because an
    initializer that raises breaks the whole pool with an unhelpful message."""
    global _WORKER_CORE, _WORKER_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # pyctcdecode's warnings were shown by the parent's decoder (or our own checks there);
    # N workers repeating them, unformatted, would only be noise.
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    try:
        _WORKER_CORE = _Core(settings)
    except W2V2Error as exc:
        _WORKER_ERROR = exc
    except Exception as exc:  # noqa: BLE001 - any library failure, reported per file
        _WORKER_ERROR = W2V2Error(f"cannot build the beam decoder: {type(exc).__name__}: {exc}")


def _worker_decode(emissions: Emissions) -> Transcript:
    if _WORKER_ERROR is not None:
        raise _WORKER_ERROR
    assert _WORKER_CORE is not None
    return _decode_with(_WORKER_CORE, emissions)


def _decode_with(core: _Core, emissions: Emissions) -> Transcript:
    try:
        return core.decode(emissions)
    except W2V2Error:
        raise
    except Exception as exc:  # a library failing in a new way: the file fails, not the run
        raise W2V2Error(f"beam search failed: {type(exc).__name__}: {exc}") from exc


def _normalize_hotwords(hotwords: tuple[str, ...], case: str, chars: frozenset[str]) -> list[str]:
    """Hotwords in the model's case (they are matched against its text); a warning for words
    the model cannot spell, since they can never be matched."""
    out = []
    for phrase in hotwords:
        phrase = " ".join(fold_case(phrase, case).split())
        if not phrase:
            continue
        missing = sorted(set(phrase.replace(" ", "")) - chars)
        if missing and chars:
            logger.warning(
                "hotword %r has characters the model cannot output (%s); it will never match",
                phrase,
                "".join(missing),
            )
        out.append(phrase)
    return out


class BeamDecoder(Decoder):
    """CTC beam search (pyctcdecode) with an optional KenLM n-gram model and hotwords.

    ``options.lm`` may be a KenLM file (ARPA or binary), a ``language_model/`` folder or a
    model folder that has one. alpha and beta come from the options, else the folder's
    ``attrs.json``, else 0.5 and 1.0. ``options.workers``: None = one per CPU core, 0 or 1
    = decode in this process. Attributes ``alpha``, ``beta``, ``lm`` (the KenLM file or
    None), ``unigrams_from`` and ``workers`` tell what was chosen.
    """

    name = "beam"

    def __init__(self, vocabulary: Vocabulary, options: DecodeOptions | None = None) -> None:
        super().__init__(vocabulary)
        options = options or DecodeOptions()
        alphabet = decoder_alphabet(vocabulary)
        if options.unigrams is not None and options.lm is None:
            raise ConfigError("a unigram list was given without a language model")
        source: LMSource | None = None
        lookup_case: str | None = None
        if options.lm is not None:
            if not alphabet.has_word_boundary:
                raise ConfigError(
                    "the model has no word delimiter token, so its output has no words for "
                    "a word-level language model"
                )
            source = resolve_lm(Path(options.lm), options.unigrams)
            if source.unigrams is not None:
                lm_case = text_case(source.unigrams)
                lookup_case = lm_case_conversion(alphabet.case, lm_case)
                if lookup_case is not None:
                    logger.info(
                        "the LM is %s-case and the model %s-case: LM lookups are case-mapped",
                        lm_case,
                        alphabet.case,
                    )
                check_lm_spelling(source.unigrams, alphabet.chars, alphabet.case, lookup_case)
        attrs = source.attrs if source is not None else {}
        self.settings = BeamSettings(
            vocabulary=vocabulary,
            labels=alphabet.labels,
            folds=alphabet.folds,
            lm_path=None if source is None else str(source.path),
            lm_format=None if source is None else source.format,
            unigrams=None if source is None else source.unigrams,
            lm_lookup_case=lookup_case,
            alpha=_pick(options.alpha, attrs.get("alpha"), DEFAULT_ALPHA),
            beta=_pick(options.beta, attrs.get("beta"), DEFAULT_BETA),
            unk_score_offset=_pick(None, attrs.get("unk_score_offset"), DEFAULT_UNK_SCORE_OFFSET),
            score_boundary=bool(attrs.get("score_boundary", DEFAULT_SCORE_BOUNDARY)),
            beam_width=options.beam_width,
            beam_prune_logp=options.beam_prune_logp,
            token_min_logp=options.token_min_logp,
            hotwords=tuple(_normalize_hotwords(options.hotwords, alphabet.case, alphabet.chars)),
            hotword_weight=options.hotword_weight,
        )
        self.lm = None if source is None else source.path
        self.unigrams_from = "" if source is None else source.unigrams_from
        self.alpha = self.settings.alpha
        self.beta = self.settings.beta
        requested = (os.cpu_count() or 1) if options.workers is None else options.workers
        #: Worker processes; 0 = decoding happens in this process.
        self.workers = requested if requested > 1 else 0
        self._core: _Core | None = None
        self._pool: ProcessPoolExecutor | None = None
        if self.workers == 0 or source is None or source.format == "binary":
            # Built here even for a pool when it is cheap (no LM, or a memory-mapped binary
            # one that workers share): a bad LM fails now, not on the first file, and
            # pyctcdecode's own warnings appear once, here, not once per worker.
            self._core = _Core(self.settings)
        if source is not None and source.format == "arpa" and self.workers > 1:
            logger.info(
                "each of the %d decode workers parses the ARPA file %s; a binary LM "
                "(w2v2 lm build) loads faster and is shared between workers",
                self.workers,
                source.path,
            )

    def decode(self, emissions: Emissions) -> Transcript:
        """Decode in this process (the pool is only used by ``submit``)."""
        if self._core is None:
            self._core = _Core(self.settings)
        return _decode_with(self._core, emissions)

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=mp.get_context(start_method()),
                initializer=_worker_init,
                initargs=(self.settings,),
            )
        return self._pool

    def submit(self, emissions: Emissions) -> Future[Transcript]:
        """Decode in a worker process; the future's errors are always ``W2V2Error``."""
        if self.workers == 0:
            return super().submit(emissions)
        try:
            inner = self._get_pool().submit(_worker_decode, emissions)
        except BrokenProcessPool:
            # A worker died (killed for memory?) earlier: start a fresh pool once.
            self._drop_pool()
            inner = self._get_pool().submit(_worker_decode, emissions)
        outer: Future[Transcript] = Future()
        inner.add_done_callback(_forward_to(outer))
        return outer

    def _drop_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Stop the workers (waiting for running decodes) and free the LM."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._core is not None:
            self._core.close()
            self._core = None


def _pick(option: float | None, attr: float | bool | None, default: float) -> float:
    if option is not None:
        return float(option)
    if attr is not None:
        return float(attr)
    return default


def _forward_to(outer: Future[Transcript]) -> Callable[[Future[Transcript]], None]:
    """Copy a pool future's outcome to ``outer``, turning pool failures into W2V2Error."""

    def done(inner: Future[Transcript]) -> None:
        if inner.cancelled():
            outer.cancel()
            return
        exc = inner.exception()
        if exc is None:
            outer.set_result(inner.result())
        elif isinstance(exc, W2V2Error):
            outer.set_exception(exc)
        elif isinstance(exc, BrokenProcessPool):
            outer.set_exception(W2V2Error("a beam-search worker process died (out of memory?)"))
        else:
            outer.set_exception(W2V2Error(f"beam search failed: {type(exc).__name__}: {exc}"))

    return done
