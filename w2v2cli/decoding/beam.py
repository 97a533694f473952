"""Beam search with an optional KenLM language model (pyctcdecode), in-process or in a pool.

``beam_settings`` resolves and checks everything once: the LM (missing file, wrong format,
bad ``attrs.json``, wrong case, wrong script: one-line errors naming the LM), the labels,
the weights and the hotwords; the result is small enough to send to worker processes.
``BeamCore`` is one pyctcdecode decoder built from it, with ``set_weights`` to change alpha
and beta without rebuilding the LM (``lm tune``). ``BeamDecoder`` is the ``Decoder``:
built once per run, it decodes in this process or in the shared ``WorkerPool``. Words,
times and confidences follow ``alignment.py``, so greedy and beam transcripts measure the
same things.

Binary LMs are memory-mapped (kenlm's ``POPULATE_OR_LAZY``), so N workers share one copy
of the model in the page cache; ARPA files are parsed by every worker, which is why binary
LMs are recommended.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, DecodeError, LMError, W2V2Error
from ..lm import (
    DEFAULT_ALPHA,
    DEFAULT_BETA,
    DEFAULT_SCORE_BOUNDARY,
    DEFAULT_UNK_SCORE_OFFSET,
    LMSource,
    resolve_lm,
)
from ..options import DecodeOptions
from ..records import Emissions, Transcript, Vocabulary
from .alignment import file_confidence, words_from_frame_spans
from .alphabet import (
    check_lm_spelling,
    decoder_alphabet,
    fold_case,
    lm_case_conversion,
    text_case,
)
from .base import Decoder
from .pool import WorkerPool

logger = logging.getLogger("w2v2cli")

#: pyctcdecode clips log-probabilities at log(1e-15); silenced columns sit there.
_FLOOR = float(np.log(1e-15))


@dataclass(frozen=True)
class BeamSettings:
    """Everything a decoder needs, resolved and validated, small enough to send to workers."""

    vocabulary: Vocabulary
    labels: tuple[str, ...]
    folds: tuple[tuple[int, int], ...]
    lm_path: str | None
    lm_format: str | None
    unigrams: tuple[str, ...] | None
    unigrams_from: str
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
    return BeamSettings(
        vocabulary=vocabulary,
        labels=alphabet.labels,
        folds=alphabet.folds,
        lm_path=None if source is None else str(source.path),
        lm_format=None if source is None else source.format,
        unigrams=None if source is None else source.unigrams,
        unigrams_from="" if source is None else source.unigrams_from,
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
    except (OSError, RuntimeError, ValueError) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise LMError(path, f"KenLM cannot load it: {reason}") from None


def _language_model(settings: BeamSettings) -> Any:
    """pyctcdecode's ``LanguageModel``, with case-mapped lookups when the LM's case differs
    from the model's (the LM side is converted; see ``alphabet.lm_case_conversion``)."""
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


class BeamCore:
    """One pyctcdecode decoder and the code around it; lives in the parent or a worker."""

    def __init__(self, settings: BeamSettings) -> None:
        from pyctcdecode.alphabet import Alphabet
        from pyctcdecode.decoder import BeamSearchDecoderCTC

        self.settings = settings
        language_model = _language_model(settings) if settings.lm_path else None
        alphabet = Alphabet.build_alphabet(list(settings.labels))
        self._decoder = BeamSearchDecoderCTC(alphabet, language_model)

    def set_weights(self, alpha: float, beta: float) -> None:
        """Change the LM weight and word bonus without rebuilding the LM. pyctcdecode keeps
        its score caches per ``decode_beams`` call, so nothing stale survives a switch."""
        # pyctcdecode checks isinstance(alpha, float): ints (from a grid like 0,1) fail.
        self._decoder.reset_params(alpha=float(alpha), beta=float(beta))

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


def quiet_core(settings: BeamSettings) -> BeamCore:
    """A ``BeamCore`` built without pyctcdecode's build-time warnings ("only N unigrams..."),
    which the parent's checks already covered: for workers and for every rebuilt tuner."""
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
    """``None`` → one per CPU core; 0 or 1 → 0 (decode in this process)."""
    requested = (os.cpu_count() or 1) if workers is None else int(workers)
    if requested < 0:
        raise ConfigError("decode workers must not be negative")
    return requested if requested > 1 else 0


class BeamDecoder(Decoder):
    """CTC beam search (pyctcdecode) with an optional KenLM n-gram model and hotwords.

    Built from a vocabulary and ``DecodeOptions`` (see ``beam_settings``), or from settings
    already checked. ``options.workers``: None = one per CPU core, 0 or 1 = decode in this
    process. Attributes ``alpha``, ``beta``, ``lm`` (the KenLM file or None),
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
            # pyctcdecode's own warnings appear once, here, not once per worker.
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
