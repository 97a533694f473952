"""Tune beam search's LM weight (alpha) and word bonus (beta) on cached log-probabilities.

The model's output does not depend on alpha and beta, so the model runs once
(an ``EmissionSource``: the engine or saved ``--load-logits``) and only beam search is
repeated, once per ``(alpha, beta)`` pair, on the same log-probabilities; corpus-level WER
and CER of each pair come from ``scoring``. Typical use::

    ok, failed, _ = compute_emissions(manifest, ModelSource(engine))
    items = [(entry.text, em) for entry, em in ok]
    result = tune(items, vocab, DecodeOptions(lm=Path("lm.bin")), [0.3, 0.6], [0.0, 1.5],
                  workers=4)
    print(result.best.alpha, result.best.beta, result.best.wer)
    update_lm_attrs(Path("model/language_model"), result.best.alpha, result.best.beta)

Decisions, with reasons:

- **One decoder per process, weights switched between pairs** (``BeamCore.set_weights``).
  On pyctcdecode that is in place: alpha and beta are two numbers in its
  ``LanguageModel`` and ``reset_params`` changes them (its score caches live per
  ``decode_beams`` call, so nothing stale survives a switch). ctc-beam-decoder takes them
  only when a decoder is built, so it is rebuilt when they change: a binary LM is
  memory-mapped again from the page cache (~10 ms for an 8 MB LM), but an ARPA file is
  parsed again, once per pair and worker, hence the warning to tune with a binary LM.
  Decoders are ``decoding.beam``'s own (same engine, labels, special-token folding,
  memory-mapped binary LMs, case mapping), so a pair's WER here is the WER
  ``w2v2 eval --decoder beam --alpha A --beta B`` reports.
- **One pool for the whole search.** ``workers`` processes are started once, in the same
  ``decoding.pool.WorkerPool`` beam decoding uses. Log-probabilities go to a temporary folder once,
  as two ``.npy`` files that every worker memory-maps, so N workers share one copy in the
  page cache and nothing is pickled per pair. A task is one pair on a shard of at most
  ``MAX_TASK_ITEMS`` utterances (more shards when there are fewer pairs than workers), so
  every worker has work until the end.
- **Ranking.** Pairs are sorted by corpus WER (compared as integer error counts, which have
  the same denominator for every pair, so no float ties are lost to rounding); ties go to
  the smaller alpha (less reliance on the LM generalises better to text the LM has not
  seen), then the smaller beta. The order does not depend on the number of workers.
- **Search values.** Grid values are rounded to 6 decimals and random ones to 3, so that
  tables and ``attrs.json`` read ``0.5``, not ``0.49999999999999994``; finer steps than
  0.001 do not move a WER.
"""

from __future__ import annotations

import logging
import math
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..decoding.beam import BeamSettings, beam_settings, quiet_core, resolve_workers
from ..decoding.pool import WorkerPool
from ..errors import ConfigError
from ..options import DecodeOptions
from ..records import Emissions, Vocabulary
from .normalize import Normalization
from .scoring import Score, aggregate, utterance_scores

logger = logging.getLogger("w2v2cli")

#: ``(reference text, emissions)``: one scored utterance.
RefEmissions = tuple[str, Emissions]


@dataclass(frozen=True)
class TuneRow:
    """One ``(alpha, beta)`` pair and its corpus-level score."""

    alpha: float
    beta: float
    score: Score

    @property
    def wer(self) -> float:
        return self.score.wer

    @property
    def cer(self) -> float:
        return self.score.cer

    def sort_key(self) -> tuple[int, float, float]:
        """Fewest word errors, then smaller alpha, then smaller beta (see the module doc)."""
        return (self.score.words.errors, self.alpha, self.beta)


@dataclass(frozen=True)
class TuneResult:
    """All pairs, best first (``rows[0]`` is ``best``), and what the search cost."""

    rows: tuple[TuneRow, ...]
    utterances: int
    workers: int  # processes used; 0 = decoded in this process
    seconds: float

    @property
    def best(self) -> TuneRow:
        return self.rows[0]


# --------------------------------------------------------------------------- search values


def grid_values(low: float, high: float, n: int) -> list[float]:
    """``n`` evenly spaced values from ``low`` to ``high`` inclusive (``n == 1``: ``low``),
    rounded to 6 decimals, without duplicates."""
    if n < 1:
        raise ConfigError("a grid needs at least one value per axis")
    if low > high:
        raise ConfigError(f"range {low:g},{high:g} is empty (low > high)")
    if n == 1:
        return [round(float(low), 6)]
    step = (high - low) / (n - 1)
    return list(dict.fromkeys(round(low + i * step, 6) for i in range(n)))


def grid_pairs(alphas: Sequence[float], betas: Sequence[float]) -> list[tuple[float, float]]:
    """Every ``(alpha, beta)`` combination, duplicates removed, in input order."""
    return list(dict.fromkeys((float(a), float(b)) for a in alphas for b in betas))


def random_pairs(
    alpha_range: tuple[float, float],
    beta_range: tuple[float, float],
    n: int,
    seed: int = 0,
) -> list[tuple[float, float]]:
    """``n`` pairs drawn uniformly from the ranges with a seeded generator (the same seed
    gives the same pairs everywhere), rounded to 3 decimals; duplicates are dropped."""
    if n < 1:
        raise ConfigError("random search needs at least one sample")
    for low, high in (alpha_range, beta_range):
        if low > high:
            raise ConfigError(f"range {low:g},{high:g} is empty (low > high)")
    rng = random.Random(seed)
    pairs = [
        (round(rng.uniform(*alpha_range), 3), round(rng.uniform(*beta_range), 3)) for _ in range(n)
    ]
    return list(dict.fromkeys(pairs))


# --------------------------------------------------------------------------- decoding


class Tuner:
    """One decoder and the utterances it decodes; lives in the parent or in a worker."""

    def __init__(self, settings: BeamSettings, emissions: Sequence[Emissions]) -> None:
        self.core = quiet_core(settings)
        self.emissions = emissions

    def texts(self, alpha: float, beta: float, start: int, stop: int) -> list[str]:
        self.core.set_weights(alpha, beta)
        return [self.core.decode(em).text for em in self.emissions[start:stop]]

    def close(self) -> None:
        self.core.close()


@dataclass(frozen=True)
class _Store:
    """Where a worker finds the log-probabilities: a folder with ``log_probs.npy`` (all
    utterances' frames, concatenated) and ``frame_starts.npy``, plus each utterance's
    ``(first frame, end frame, frame_duration, duration)``. Small enough to pickle."""

    folder: str
    spans: tuple[tuple[int, int, float, float], ...]


def _write_store(emissions: Sequence[Emissions], vocab_size: int, folder: Path) -> _Store:
    """Write all emissions once; filled in place so the parent never holds a second copy."""
    ends = np.cumsum([em.num_frames for em in emissions])
    starts = np.concatenate([[0], ends[:-1]]).astype(int) if len(ends) else np.zeros(0, int)
    total = int(ends[-1]) if len(ends) else 0
    log_probs = np.lib.format.open_memmap(
        folder / "log_probs.npy", mode="w+", dtype=np.float32, shape=(total, vocab_size)
    )
    frame_starts = np.lib.format.open_memmap(
        folder / "frame_starts.npy", mode="w+", dtype=np.float64, shape=(total,)
    )
    for em, a, b in zip(emissions, starts, ends, strict=True):
        log_probs[a:b] = em.log_probs
        frame_starts[a:b] = em.frame_starts
    log_probs.flush()
    frame_starts.flush()
    del log_probs, frame_starts
    spans = tuple(
        (int(a), int(b), float(em.frame_duration), float(em.duration))
        for em, a, b in zip(emissions, starts, ends, strict=True)
    )
    return _Store(str(folder), spans)


def _open_store(store: _Store) -> list[Emissions]:
    folder = Path(store.folder)
    log_probs = np.load(folder / "log_probs.npy", mmap_mode="r")
    frame_starts = np.load(folder / "frame_starts.npy", mmap_mode="r")
    return [
        Emissions(log_probs[a:b], frame_starts[a:b], frame_duration, duration)
        for a, b, frame_duration, duration in store.spans
    ]


def _worker_tuner(settings: BeamSettings, store: _Store) -> Tuner:
    return Tuner(settings, _open_store(store))


def _worker_texts(tuner: Tuner, alpha: float, beta: float, start: int, stop: int) -> list[str]:
    return tuner.texts(alpha, beta, start, stop)


#: Most utterances one task decodes: keeps tasks short, so the last pairs spread over all
#: workers, progress moves, and Ctrl-C (which waits for running tasks) stops soon.
MAX_TASK_ITEMS = 64


def shards(n_items: int, n_pairs: int, workers: int) -> list[tuple[int, int]]:
    """Utterance ranges each pair is cut into: at most ``MAX_TASK_ITEMS`` utterances, and
    with fewer pairs than workers enough parts that every worker gets some."""
    parts = math.ceil(n_items / MAX_TASK_ITEMS)
    if n_pairs < workers:
        parts = max(parts, math.ceil(workers / n_pairs))
    parts = max(1, min(parts, n_items))
    bounds = [round(i * n_items / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a] or [(0, 0)]


def tune_pairs(
    items: Sequence[RefEmissions],
    vocabulary: Vocabulary,
    decode_options: DecodeOptions | BeamSettings,
    pairs: Sequence[tuple[float, float]],
    *,
    workers: int | None,
    normalize: Normalization = True,
    ids: Sequence[str] | None = None,
    on_result: Callable[[TuneRow], None] | None = None,
) -> TuneResult:
    """Score beam search with every ``(alpha, beta)`` in ``pairs`` on the same emissions.

    ``items`` are ``(reference, emissions)`` pairs; ``decode_options`` gives the LM and the
    beam settings (its alpha, beta and workers are not used), or is what
    ``decoding.beam.beam_settings`` returned for them. ``workers``: processes to decode in
    (None: one per CPU core; 0 or 1: this process). ``on_result`` is called in this
    process with each pair's row as soon as it is scored (for progress).
    """
    started = time.perf_counter()
    pairs = list(dict.fromkeys((float(a), float(b)) for a, b in pairs))
    if not pairs:
        raise ConfigError("no (alpha, beta) pairs to try")
    if any(not (math.isfinite(a) and math.isfinite(b)) for a, b in pairs):
        raise ConfigError("alpha and beta must be finite numbers")
    if not items:
        raise ConfigError("no utterances to tune on")
    refs = [ref for ref, _ in items]
    emissions = [em for _, em in items]
    for i, em in enumerate(emissions):
        shape = np.shape(em.log_probs)
        if len(shape) != 2 or shape[1] != vocabulary.size:
            raise ConfigError(
                f"utterance {i + 1}: emissions have shape {shape}, the vocabulary has "
                f"{vocabulary.size} ids (logits saved for another model?)"
            )
    ids = list(ids) if ids is not None else [str(i + 1) for i in range(len(items))]

    requested = resolve_workers(workers)
    parts = shards(len(items), len(pairs), max(requested, 1))
    n_workers = min(requested, len(pairs) * len(parts)) if requested else 0
    n_workers = n_workers if n_workers > 1 else 0
    if isinstance(decode_options, BeamSettings):
        settings = decode_options
        if settings.vocabulary != vocabulary:
            raise ConfigError("the beam settings were checked for another vocabulary")
    else:
        settings = beam_settings(vocabulary, decode_options)
    if settings.lm_path is None:
        raise ConfigError("tuning alpha and beta needs a language model (--lm)")
    if settings.engine == "ctc-beam-decoder" and settings.lm_format == "arpa" and len(pairs) > 1:
        logger.warning(
            "the ARPA file %s is parsed again for every (alpha, beta) pair (ctc-beam-decoder "
            "takes the weights only when it loads the LM); a binary LM (w2v2 lm build, or "
            "KenLM's build_binary) makes tuning faster",
            settings.lm_path,
        )

    rows: list[TuneRow] = []

    def score_pair(index: int, texts: list[str]) -> None:
        alpha, beta = pairs[index]
        utts = utterance_scores(refs, texts, normalize=normalize, ids=ids)
        row = TuneRow(alpha, beta, aggregate(utts))
        rows.append(row)
        if on_result is not None:
            on_result(row)

    if n_workers == 0:
        tuner = Tuner(settings, emissions)
        try:
            for index, (alpha, beta) in enumerate(pairs):
                score_pair(index, tuner.texts(alpha, beta, 0, len(items)))
        finally:
            tuner.close()
    else:
        _run_pool(settings, emissions, vocabulary.size, pairs, parts, n_workers, score_pair)
    rows.sort(key=TuneRow.sort_key)
    return TuneResult(
        rows=tuple(rows),
        utterances=len(items),
        workers=n_workers,
        seconds=time.perf_counter() - started,
    )


def _run_pool(
    settings: BeamSettings,
    emissions: Sequence[Emissions],
    vocab_size: int,
    pairs: Sequence[tuple[float, float]],
    parts: Sequence[tuple[int, int]],
    workers: int,
    done: Callable[[int, list[str]], None],
) -> None:
    """Decode every (pair, shard) task in one pool; call ``done(pair index, texts)`` when
    all shards of a pair are back. Any task's failure (``W2V2Error``) ends the search."""
    folder = Path(tempfile.mkdtemp(prefix="w2v2-tune-"))
    pool: WorkerPool | None = None
    try:
        store = _write_store(emissions, vocab_size, folder)
        pool = WorkerPool(workers, _worker_tuner, settings, store)
        texts: list[list[str]] = [[""] * len(emissions) for _ in pairs]
        missing = [len(parts)] * len(pairs)
        futures: dict[Future[list[str]], tuple[int, int, int]] = {}
        for p, (alpha, beta) in enumerate(pairs):
            for start, stop in parts:
                future = pool.submit(_worker_texts, alpha, beta, start, stop)
                futures[future] = (p, start, stop)
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                p, start, stop = futures[future]
                texts[p][start:stop] = future.result()
                missing[p] -= 1
                if missing[p] == 0:
                    done(p, texts[p])
    finally:
        if pool is not None:
            pool.close()
        shutil.rmtree(folder, ignore_errors=True)


def tune(
    emissions_with_refs: Sequence[RefEmissions],
    vocabulary: Vocabulary,
    decode_options: DecodeOptions | BeamSettings,
    alphas: Sequence[float],
    betas: Sequence[float],
    *,
    workers: int | None,
    normalize: Normalization = True,
    ids: Sequence[str] | None = None,
    on_result: Callable[[TuneRow], None] | None = None,
) -> TuneResult:
    """Grid search: every combination of ``alphas`` and ``betas`` (see ``tune_pairs``;
    random search is ``tune_pairs(..., random_pairs(...))``)."""
    return tune_pairs(
        emissions_with_refs,
        vocabulary,
        decode_options,
        grid_pairs(alphas, betas),
        workers=workers,
        normalize=normalize,
        ids=ids,
        on_result=on_result,
    )
