"""Tune beam search's LM weight (alpha) and word bonus (beta) on cached log-probabilities.

The model's output does not depend on alpha and beta, so the model runs once
(``evaluate.compute_emissions``, or saved ``--load-logits``) and only beam search is
repeated, once per ``(alpha, beta)`` pair, on the same log-probabilities; corpus-level WER
and CER of each pair come from ``metrics``. Typical use::

    ok, failed, _ = compute_emissions(manifest, transcriber=t)
    items = [(entry.text, em) for entry, em in ok]
    result = tune(items, vocab, DecodeOptions(lm=Path("lm.bin")), [0.3, 0.6], [0.0, 1.5],
                  workers=4)
    print(result.best.alpha, result.best.beta, result.best.wer)
    update_lm_attrs(Path("model/language_model"), result.best.alpha, result.best.beta)

Decisions, with reasons:

- **One decoder per process, weights switched in place.** Loading a KenLM model and
  building pyctcdecode's unigram trie is the expensive part of a decoder, and alpha/beta
  are only two numbers in its ``LanguageModel``; pyctcdecode's ``reset_params`` changes
  them without a rebuild (its score caches live per ``decode_beams`` call, so nothing stale
  survives a switch). Decoders are built by ``beam.py``'s own machinery (same labels,
  special-token folding, memory-mapped binary LMs, case-mapped lookups), so a pair's WER
  here is the WER ``w2v2 eval --decoder beam --alpha A --beta B`` reports.
- **One pool for the whole search.** ``workers`` processes are started once (the
  ``forkserver``/``spawn`` start method of ``beam.start_method``, for the same reason as
  there: the parent has torch threads). Log-probabilities go to a temporary folder once,
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

import json
import logging
import math
import multiprocessing as mp
import os
import random
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from rich import box
from rich.table import Table

from .beam import BeamDecoder, BeamSettings, _Core, _decode_with, start_method
from .errors import ConfigError, W2V2Error
from .lm import ATTRS_FILE, LM_FOLDER, LM_SUFFIXES
from .metrics import Normalization, Score, aggregate, utterance_scores
from .options import DecodeOptions
from .records import Emissions, Vocabulary

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


class _WeightedCore(_Core):
    """``beam._Core`` whose LM weights can be switched without rebuilding the LM."""

    def set_weights(self, alpha: float, beta: float) -> None:
        # pyctcdecode checks isinstance(alpha, float): ints (from a grid like 0,1) fail.
        self._decoder.reset_params(alpha=float(alpha), beta=float(beta))


class _Tuner:
    """One decoder and the utterances it decodes; lives in the parent or in a worker."""

    def __init__(self, settings: BeamSettings, emissions: Sequence[Emissions]) -> None:
        self.core = _WeightedCore(settings)
        self.emissions = emissions

    def texts(self, alpha: float, beta: float, start: int, stop: int) -> list[str]:
        self.core.set_weights(alpha, beta)
        return [_decode_with(self.core, em).text for em in self.emissions[start:stop]]

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


# Worker-process state: one tuner per worker, built by the pool's initializer.
_WORKER_TUNER: _Tuner | None = None
_WORKER_ERROR: W2V2Error | None = None


def _worker_init(settings: BeamSettings, store: _Store) -> None:
    """Build the worker's decoder and map the log-probabilities, once. Errors are kept and
    raised per task (as in ``beam._worker_init``): a raising initializer breaks the pool
    with an unhelpful message."""
    global _WORKER_TUNER, _WORKER_ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # pyctcdecode's build warnings would repeat per worker; check_lm's checks cover them.
    logging.getLogger("pyctcdecode").setLevel(logging.ERROR)
    try:
        _WORKER_TUNER = _Tuner(settings, _open_store(store))
    except W2V2Error as exc:
        _WORKER_ERROR = exc
    except Exception as exc:  # noqa: BLE001 - any library failure, reported by the task
        _WORKER_ERROR = W2V2Error(f"cannot build the beam decoder: {type(exc).__name__}: {exc}")


def _worker_texts(alpha: float, beta: float, start: int, stop: int) -> list[str]:
    if _WORKER_ERROR is not None:
        raise _WORKER_ERROR
    assert _WORKER_TUNER is not None
    return _WORKER_TUNER.texts(alpha, beta, start, stop)


#: Most utterances one task decodes: keeps tasks short, so the last pairs spread over all
#: workers, progress moves, and Ctrl-C (which waits for running tasks) stops soon.
MAX_TASK_ITEMS = 64


def _shards(n_items: int, n_pairs: int, workers: int) -> list[tuple[int, int]]:
    """Utterance ranges each pair is cut into: at most ``MAX_TASK_ITEMS`` utterances, and
    with fewer pairs than workers enough parts that every worker gets some."""
    parts = math.ceil(n_items / MAX_TASK_ITEMS)
    if n_pairs < workers:
        parts = max(parts, math.ceil(workers / n_pairs))
    parts = max(1, min(parts, n_items))
    bounds = [round(i * n_items / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:], strict=False) if b > a] or [(0, 0)]


def check_lm(vocabulary: Vocabulary, decode_options: DecodeOptions) -> BeamSettings:
    """Resolve and check the LM exactly as ``BeamDecoder`` does (files, unigrams, case,
    spelling, attrs.json), so tuning and decoding can never disagree about the LM. Cheap
    (an ARPA file is not parsed here, a binary one is memory-mapped), so callers can run it
    before the model; pass the result to ``tune_pairs`` to skip a second check.
    """
    if decode_options.lm is None:
        raise ConfigError("tuning alpha and beta needs a language model (--lm)")
    # workers=2: BeamDecoder then skips its own parse of an ARPA file (the tuning decoders
    # parse it anyway) and only builds a decoder in this process for a binary LM.
    with BeamDecoder(vocabulary, replace(decode_options, workers=2)) as decoder:
        return decoder.settings


@contextmanager
def _quiet_pyctcdecode() -> Iterator[None]:
    """pyctcdecode's build-time warnings ("only N unigrams...") repeat for every decoder
    built; ``check_lm``'s own checks already said what matters."""
    log = logging.getLogger("pyctcdecode")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _resolve_workers(workers: int | None) -> int:
    requested = (os.cpu_count() or 1) if workers is None else int(workers)
    if requested < 0:
        raise ConfigError("decode workers must not be negative")
    return requested if requested > 1 else 0


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
    beam settings (its alpha, beta and workers are not used), or is what ``check_lm``
    returned for them. ``workers``: processes to
    decode in (None: one per CPU core; 0 or 1: this process). ``on_result`` is called in
    this process with each pair's row as soon as it is scored (for progress).
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

    requested = _resolve_workers(workers)
    shards = _shards(len(items), len(pairs), max(requested, 1))
    n_workers = min(requested, len(pairs) * len(shards)) if requested else 0
    n_workers = n_workers if n_workers > 1 else 0
    if isinstance(decode_options, BeamSettings):
        settings = decode_options
        if settings.vocabulary != vocabulary:
            raise ConfigError("the beam settings were checked for another vocabulary")
    else:
        settings = check_lm(vocabulary, decode_options)

    rows: list[TuneRow] = []

    def score_pair(index: int, texts: list[str]) -> None:
        alpha, beta = pairs[index]
        utts = utterance_scores(refs, texts, normalize=normalize, ids=ids)
        row = TuneRow(alpha, beta, aggregate(utts))
        rows.append(row)
        if on_result is not None:
            on_result(row)

    if n_workers == 0:
        with _quiet_pyctcdecode():
            tuner = _Tuner(settings, emissions)
        try:
            for index, (alpha, beta) in enumerate(pairs):
                score_pair(index, tuner.texts(alpha, beta, 0, len(items)))
        finally:
            tuner.close()
    else:
        _run_pool(settings, emissions, vocabulary.size, pairs, shards, n_workers, score_pair)
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
    shards: Sequence[tuple[int, int]],
    workers: int,
    done: Callable[[int, list[str]], None],
) -> None:
    """Decode every (pair, shard) task in one pool; call ``done(pair index, texts)`` when
    all shards of a pair are back."""
    folder = Path(tempfile.mkdtemp(prefix="w2v2-tune-"))
    pool: ProcessPoolExecutor | None = None
    try:
        store = _write_store(emissions, vocab_size, folder)
        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=mp.get_context(start_method()),
            initializer=_worker_init,
            initargs=(settings, store),
        )
        texts: list[list[str]] = [[""] * len(emissions) for _ in pairs]
        missing = [len(shards)] * len(pairs)
        futures: dict[Future[list[str]], tuple[int, int, int]] = {}
        for p, (alpha, beta) in enumerate(pairs):
            for start, stop in shards:
                future = pool.submit(_worker_texts, alpha, beta, start, stop)
                futures[future] = (p, start, stop)
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                p, start, stop = futures[future]
                try:
                    texts[p][start:stop] = future.result()
                except BrokenProcessPool:
                    raise W2V2Error("a tuning worker process died (out of memory?)") from None
                except W2V2Error:
                    raise
                except Exception as exc:  # a library failing in a new way
                    raise W2V2Error(f"beam search failed: {type(exc).__name__}: {exc}") from exc
                missing[p] -= 1
                if missing[p] == 0:
                    done(p, texts[p])
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
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


# --------------------------------------------------------------------------- attrs.json


def attrs_path(folder: Path) -> Path:
    """The ``attrs.json`` to update for ``folder``: a ``language_model/`` folder (one with
    an ``attrs.json`` or a KenLM file) or a model folder that has one. Checked before any
    tuning so a long search never ends in a path error. Raises ``ConfigError``."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder")

    def is_lm_folder(path: Path) -> bool:
        return (path / ATTRS_FILE).is_file() or any(
            p.is_file() and p.suffix in LM_SUFFIXES for p in path.iterdir()
        )

    for candidate in (folder, folder / LM_FOLDER):
        if candidate.is_dir() and is_lm_folder(candidate):
            target = candidate / ATTRS_FILE
            _read_attrs(target)  # a broken file fails now, not after the search
            return target
    raise ConfigError(
        f"{folder} is neither a {LM_FOLDER}/ folder (with {ATTRS_FILE} or a KenLM file) nor "
        f"a model folder that has one"
    )


def _read_attrs(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} does not hold a JSON object")
    return data


def update_lm_attrs(folder: Path, alpha: float, beta: float) -> Path:
    """Set ``alpha`` and ``beta`` in ``folder``'s ``attrs.json`` (see ``attrs_path``),
    keeping its other keys (unk_score_offset, score_boundary, anything else) and their
    order; a missing file is created. Written to a temporary file in the same folder and
    renamed, so readers see the old or the new file, never half of one. Returns the path.
    """
    target = attrs_path(folder)
    data = _read_attrs(target)
    data["alpha"] = float(alpha)
    data["beta"] = float(beta)
    if target.exists():
        mode = target.stat().st_mode & 0o777
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".attrs-", suffix=".json")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(data))
        os.chmod(tmp, mode)  # mkstemp makes 0600 files; keep the folder readable as before
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


# --------------------------------------------------------------------------- display


def results_table(result: TuneResult, *, title: str | None = None) -> Table:
    """A rich table of every pair, best first and highlighted: alpha, beta, WER, CER and
    word substitutions/deletions/insertions (insertions show a beta that is too high)."""
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False)
    for name in ("alpha", "beta", "WER", "CER", "S/D/I"):
        table.add_column(name, justify="right", no_wrap=True)
    for i, row in enumerate(result.rows):
        words = row.score.words
        table.add_row(
            f"{row.alpha:g}",
            f"{row.beta:g}",
            f"{100 * row.wer:.2f}%",
            f"{100 * row.cer:.2f}%",
            f"{words.substitutions}/{words.deletions}/{words.insertions}",
            style="bold green" if i == 0 else None,
        )
    return table
