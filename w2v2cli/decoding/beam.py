"""Beam search with an optional KenLM language model, in-process or in a pool.

``beam_settings`` resolves and checks everything once: the engine (``beam_engines.py``:
ctc-beam-decoder where it is installed, else pyctcdecode), the LM (missing file, wrong
format, bad ``attrs.json``, wrong case, wrong script: one-line errors naming the LM), the
labels, the weights and the hotwords; the result is small enough to send to worker
processes. ``BeamCore`` is one engine decoder built from it, with ``set_weights`` to change
alpha and beta between decodes (``lm tune``). ``BeamDecoder`` is the ``Decoder``: built once
per run, it decodes in this process or in the shared ``WorkerPool``. Words, times and
confidences follow ``timing.py``, so greedy and beam transcripts measure the same
things, whichever engine found the words.

Letter case: when the LM's case is the opposite of the model's, the engine searches over
labels in the LM's case (``lm.alphabet.case_map``) and the words it returns are mapped back.

Binary LMs are memory-mapped, so N workers share one copy of the model in the page cache
(pyctcdecode's kenlm module is told to; ctc-beam-decoder's KenLM does so by default on Linux
and reads a private copy elsewhere); ARPA files are parsed by every worker, which is why
binary LMs are recommended.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cores import available_cores
from ..errors import ConfigError, DecodeError, LMError, W2V2Error
from ..lm import (
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    DEFAULT_SCORE_BOUNDARY,
    DEFAULT_UNK_SCORE_OFFSET,
    LMSource,
    resolve_lm,
)
from ..lm.alphabet import (
    case_map,
    check_lm_spelling,
    decoder_alphabet,
    fold_case,
    is_placeholder,
    lm_case_conversion,
    text_case,
)
from ..options import DecodeOptions
from ..records import Emissions, Transcript, Vocabulary
from .base import Decoder
from .beam_engines import LMSpec, SearchParams, open_search, resolve_engine
from .pool import WorkerPool
from .timing import file_confidence, words_from_frame_spans

logger = logging.getLogger("w2v2cli")

#: Both engines clip log-probabilities at log(1e-15); silenced columns sit there.
_FLOOR = float(np.log(1e-15))


@dataclass(frozen=True)
class BeamSettings:
    """Everything a decoder needs, resolved and validated, small enough to send to workers."""

    vocabulary: Vocabulary
    engine: str  # "ctc-beam-decoder" | "pyctcdecode", resolved (see beam_engines.resolve_engine)
    labels: tuple[str, ...]
    folds: tuple[tuple[int, int], ...]
    lm_path: str | None
    lm_format: str | None
    unigrams: tuple[str, ...] | None
    unigrams_from: str
    lm_lookup_case: str | None  # None, or "upper"/"lower": the LM's case, when it differs
    lm_case_map: tuple[tuple[str, str], ...]  # (model letter, LM letter); see lm.alphabet.case_map
    alpha: float
    beta: float
    unk_score_offset: float
    score_boundary: bool
    beam_width: int
    beam_prune_logp: float
    token_min_logp: float
    hotwords: tuple[str, ...]
    hotword_weight: float


def _pick(option: float | None, attr: float | bool | None, default: float) -> float:
    if option is not None:
        return float(option)
    if attr is not None:
        return float(attr)
    return default


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


def _lm_case(source: LMSource, case: str, chars: frozenset[str]) -> str | None:
    """How LM lookups are case-mapped; refuses an LM that does not fit (``LMError``)."""
    if source.unigrams is None:
        return None
    lm_case = text_case(source.unigrams)
    try:
        lookup_case = lm_case_conversion(case, lm_case)
        check_lm_spelling(source.unigrams, chars, case, lookup_case)
    except ConfigError as exc:
        raise LMError(source.path, str(exc)) from None
    if lookup_case is not None:
        logger.info(
            "the LM is %s-case and the model %s-case: LM lookups are case-mapped", lm_case, case
        )
    return lookup_case


def beam_settings(vocabulary: Vocabulary, options: DecodeOptions | None = None) -> BeamSettings:
    """Resolve and check the LM and beam options for ``vocabulary``, loading nothing heavy.

    ``options.lm`` may be a KenLM file (ARPA or binary), a ``language_model/`` folder or a
    model folder that has one. alpha and beta come from the options, else the folder's
    ``attrs.json``, else 0.5 and 1.0.
    """
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
        lookup_case = _lm_case(source, alphabet.case, alphabet.chars)
    attrs = source.attrs if source is not None else {}
    engine = resolve_engine(options.engine, needs_lm=source is not None)
    logger.info("beam search engine: %s", engine)
    return BeamSettings(
        vocabulary=vocabulary,
        engine=engine,
        labels=alphabet.labels,
        folds=alphabet.folds,
        lm_path=None if source is None else str(source.path),
        lm_format=None if source is None else source.format,
        unigrams=None if source is None else source.unigrams,
        unigrams_from="" if source is None else source.unigrams_from,
        lm_lookup_case=lookup_case,
        lm_case_map=case_map(alphabet.chars, alphabet.case, lookup_case) if lookup_case else (),
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


def lm_spec(settings: BeamSettings) -> LMSpec | None:
    """The LM as the engines load it, or None for beam search without one."""
    if settings.lm_path is None:
        return None
    return LMSpec(
        path=settings.lm_path,
        format=settings.lm_format or "binary",
        unigrams=settings.unigrams,
        alpha=settings.alpha,
        beta=settings.beta,
        unk_score_offset=settings.unk_score_offset,
        score_boundary=settings.score_boundary,
    )


class BeamCore:
    """One engine decoder and the code around it; lives in the parent or a worker."""

    def __init__(self, settings: BeamSettings) -> None:
        self.settings = settings
        to_lm = dict(settings.lm_case_map)
        self._to_lm = str.maketrans(to_lm)
        self._to_model = str.maketrans({lm: model for model, lm in to_lm.items()})
        labels = [label.translate(self._to_lm) for label in settings.labels]
        self._params = SearchParams(
            beam_width=settings.beam_width,
            beam_prune_logp=settings.beam_prune_logp,
            token_min_logp=settings.token_min_logp,
            hotwords=tuple(h.translate(self._to_lm) for h in settings.hotwords),
            hotword_weight=settings.hotword_weight,
        )
        self._search = open_search(settings.engine, labels, lm_spec(settings))

    def set_weights(self, alpha: float, beta: float) -> None:
        """Change the LM weight and word bonus between decodes. pyctcdecode changes them in
        place; ctc-beam-decoder takes them only when built, so it is rebuilt (the LM
        memory-mapped again; see ``beam_engines.py``) when they actually change."""
        self._search.set_weights(alpha, beta)

    def decode(self, emissions: Emissions) -> Transcript:
        """Decode one file; any failure is a ``W2V2Error`` (``DecodeError``)."""
        try:
            return self._decode(emissions)
        except W2V2Error:
            raise
        except Exception as exc:  # a library failing in a new way: the file fails, not the run
            raise DecodeError(f"beam search failed: {type(exc).__name__}: {exc}") from exc

    def _decode(self, emissions: Emissions) -> Transcript:
        s = self.settings
        if emissions.num_frames == 0:
            return Transcript(text="", words=(), duration=emissions.duration, decoder="beam")
        log_probs = np.array(emissions.log_probs, dtype=np.float32, copy=True)
        if log_probs.ndim != 2 or log_probs.shape[1] != len(s.labels):
            raise DecodeError(
                f"emissions have shape {log_probs.shape}, the vocabulary has {len(s.labels)} ids"
            )
        for src, dst in s.folds:
            # Specials count as blank (extra boundary tokens as the boundary), as in greedy
            # decoding; they can then never be chosen.
            log_probs[:, dst] = np.logaddexp(log_probs[:, dst], log_probs[:, src])
            log_probs[:, src] = _FLOOR
        spans = [
            (_without_placeholders(word).translate(self._to_model), start, end)
            for word, start, end in self._search.word_frames(log_probs, self._params)
        ]
        words = words_from_frame_spans(spans, emissions, s.vocabulary)
        return Transcript(
            text=" ".join(w.text for w in words),
            words=words,
            duration=emissions.duration,
            confidence=file_confidence(words),
            decoder="beam",
        )

    def close(self) -> None:
        self._search.close()


def _without_placeholders(word: str) -> str:
    """A word as text: without the private-use character a subword vocabulary's bare
    ``▁`` label carries (``lm.alphabet.subword_alphabet``)."""
    if not any(is_placeholder(c) for c in word):
        return word
    return "".join(c for c in word if not is_placeholder(c))


def quiet_core(settings: BeamSettings) -> BeamCore:
    """A ``BeamCore`` built without pyctcdecode's build-time warnings ("only N unigrams..."),
    which the parent's checks already covered: for workers and for every rebuilt tuner.
    (ctc-beam-decoder logs nothing.)"""
    log = logging.getLogger("pyctcdecode")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        return BeamCore(settings)
    finally:
        log.setLevel(level)


def _decode_in_worker(core: BeamCore, emissions: Emissions) -> Transcript:
    return core.decode(emissions)


def resolve_workers(workers: int | None) -> int:
    """``None`` → one per core this process may use (``cores.available_cores``); 0 or 1 →
    0 (decode in this process)."""
    requested = available_cores() if workers is None else int(workers)
    if requested < 0:
        raise ConfigError("decode workers must not be negative")
    return requested if requested > 1 else 0


class BeamDecoder(Decoder):
    """CTC beam search with an optional KenLM n-gram model and hotwords, on
    ctc-beam-decoder or pyctcdecode (``options.engine``; see ``beam_engines.py``).

    Built from a vocabulary and ``DecodeOptions`` (see ``beam_settings``), or from settings
    already checked. ``options.workers``: None = one per CPU core, 0 or 1 = decode in this
    process. Attributes ``engine``, ``alpha``, ``beta``, ``lm`` (the KenLM file or None),
    ``unigrams_from`` and ``workers`` tell what was chosen.
    """

    name = "beam"

    def __init__(
        self,
        vocabulary: Vocabulary,
        options: DecodeOptions | None = None,
        *,
        settings: BeamSettings | None = None,
    ) -> None:
        super().__init__(vocabulary)
        options = options or DecodeOptions()
        self.settings = settings or beam_settings(vocabulary, options)
        s = self.settings
        self.engine = s.engine
        self.lm = None if s.lm_path is None else Path(s.lm_path)
        self.unigrams_from = s.unigrams_from
        self.alpha = s.alpha
        self.beta = s.beta
        self.workers = resolve_workers(options.workers)
        self._core: BeamCore | None = None
        self._pool: WorkerPool | None = None
        if self.workers == 0 or s.lm_path is None or s.lm_format == "binary":
            # Built here even for a pool when it is cheap (no LM, or a memory-mapped binary
            # one that workers share): a bad LM fails now, not on the first file, and
            # the engine's own warnings appear once, here, not once per worker.
            self._core = BeamCore(s)
        if s.lm_format == "arpa" and self.workers > 1:
            logger.info(
                "each of the %d decode workers parses the ARPA file %s; a binary LM "
                "(w2v2 lm build) loads faster and is shared between workers",
                self.workers,
                s.lm_path,
            )

    def decode(self, emissions: Emissions) -> Transcript:
        """Decode in this process (the pool is only used by ``submit``)."""
        if self._core is None:
            self._core = BeamCore(self.settings)
        return self._core.decode(emissions)

    def submit(self, emissions: Emissions) -> Future[Transcript]:
        """Decode in a worker process; the future's errors are always ``W2V2Error``."""
        if self.workers == 0:
            return super().submit(emissions)
        if self._pool is None:
            self._pool = WorkerPool(self.workers, quiet_core, self.settings)
        return self._pool.submit(_decode_in_worker, emissions)

    def close(self) -> None:
        """Stop the workers (waiting for running decodes) and free the LM."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None
        if self._core is not None:
            self._core.close()
            self._core = None
