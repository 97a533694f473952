"""``FileWorkers``: processes that turn a file's emissions into its finished outputs.

On a GPU the model is fast, and what the host does for each file (decoding the text, word
times, cues, formatting every output, writing it atomically) decides the speed: one Python
thread doing all of it kept the GPU 7-13% busy. ``Transcriber`` therefore hands each file's
emissions to these workers (``run.iter_run``), which do the rest while this process reads
audio and runs the model:

- **files**: decode (greedy, or beam search with its LM), render every writer's text and
  write each output atomically (``fsutil.atomic_file``); the worker returns the file's
  ``FileResult``, the same one ``pipeline.outputs.write_outputs`` gives in one process;
- **a stream** (``--stdout``): decode and render only; this process writes the texts in
  input order.

The pool is ``decoding.pool.WorkerPool``: forkserver processes that never import torch,
ignore Ctrl-C (the parent waits for the files they are writing, then stops) and treat
SIGTERM as the parent does (a file being written is removed, never left half-written).
A worker's failure is that file's alone; a worker that dies fails the files it held and a
fresh pool takes the next ones.

How many: ``default_workers`` (with greedy decoding, the cores this process may use less
two, from four cores on, at most 8; at least one on CUDA; with beam search one per core),
unless ``--decode-workers`` says (0: everything in this process).
"""

from __future__ import annotations

import dataclasses
import logging
from concurrent.futures import Future
from typing import Any

from ..cores import available_cores
from ..decoding import Decoder, GreedyDecoder
from ..decoding.beam import BeamDecoder
from ..decoding.pool import WorkerPool, start_server
from ..inference.readers import PRELOAD as READER_PRELOAD
from ..options import DecodeOptions, OutputOptions
from ..output import Writer, get_writers
from ..records import AudioItem, Emissions, FileResult, Transcript
from .outputs import write_outputs

#: Most workers a run starts by default (each holds a decoder and, for beam search, its LM).
MAX_DEFAULT_WORKERS = 8


def default_workers(decoder: str, on_cuda: bool, cores: int | None = None) -> int:
    """Worker processes a run starts when ``--decode-workers`` is not given.

    Greedy decoding: two cores stay with this process (the model's thread and the audio
    reader), the others take files, at most ``MAX_DEFAULT_WORKERS``; on CUDA at least one,
    so that the thread feeding the GPU never formats text. Below four cores on the CPU,
    none: with the per-file work as cheap as it is now, one process measured faster on 2
    cores than one worker beside it (1,579x against 1,432x real time, the model replayed;
    benchmarks/RESULTS.md), as the workers only add the transfer. Beam search, far heavier
    per file: one worker per core, as before."""
    cores = available_cores() if cores is None else cores
    if decoder == "beam":
        return cores if cores > 1 else 0
    spare = min(cores - 2, MAX_DEFAULT_WORKERS) if cores >= 4 else 0
    return max(spare, 1) if on_cuda else spare


@dataclasses.dataclass(frozen=True)
class WorkerRecipe:
    """What a worker builds once: its decoder (from picklable parts) and the run's writers."""

    decoder: Any  # ("greedy", vocabulary) or ("beam", vocabulary, BeamSettings)
    formats: tuple[str, ...]
    subtitles: Any
    case: str
    model: str
    write: bool  # False: render only (--stdout)


def start_early() -> None:
    """Start the process that workers are forked from, with this module (and what audio
    readers import: ``inference.readers.PRELOAD``) imported in it, while the model loads
    (``Transcriber``): a run's workers and readers then start at once."""
    start_server((__name__, *READER_PRELOAD))


def portable(decoder: Decoder) -> bool:
    """Whether file workers can rebuild ``decoder`` (this package's greedy and beam ones)."""
    return isinstance(decoder, (GreedyDecoder, BeamDecoder))


def recipe_for(
    decoder: Decoder, writers: list[Writer], out: OutputOptions, model: str, write: bool
) -> WorkerRecipe:
    """The recipe of a worker that decodes as ``decoder`` does and writes ``writers``."""
    if isinstance(decoder, BeamDecoder):
        spec: Any = ("beam", decoder.vocabulary, decoder.settings)
    elif isinstance(decoder, GreedyDecoder):
        spec = ("greedy", decoder.vocabulary)
    else:
        raise TypeError(f"no worker recipe for a {type(decoder).__name__}")
    return WorkerRecipe(
        spec, tuple(w.extension for w in writers), out.subtitles, out.case, model, write
    )


class FileWorkers:
    """``workers`` processes that finish files as ``recipe`` says (module docstring)."""

    def __init__(self, workers: int, recipe: WorkerRecipe) -> None:
        self.recipe = recipe
        self.workers = workers
        self._pool = WorkerPool(workers, _build, recipe)
        self._pool.start()

    def submit(self, item: AudioItem, emissions: Emissions, header: bool = False) -> Future[Any]:
        """Finish one file: the future holds its ``FileResult`` (files) or its transcript
        and each writer's stream text (``Writer.stream_text`` with ``header``) or error (a
        stream); it fails only with ``W2V2Error``."""
        return self._pool.submit(_finish, emissions, item, header)

    def pids(self, wait: bool = False) -> list[int]:
        """The worker processes' ids (``wait``: once they have started)."""
        return self._pool.pids(wait)

    def in_flight(self) -> int:
        """Files handed to the workers and not finished yet."""
        return self._pool.in_flight()

    def close(self) -> None:
        """Wait for the files being written; drop the queued ones."""
        self._pool.close()


def _build(recipe: WorkerRecipe) -> tuple[Decoder, list[Writer], WorkerRecipe]:
    """A worker's state: its decoder and writers (``WorkerPool``'s initializer)."""
    kind, vocabulary, *rest = recipe.decoder
    if kind == "beam":
        quiet = logging.getLogger("pyctcdecode")
        level = quiet.level
        quiet.setLevel(logging.ERROR)  # the parent already showed the engine's warnings
        try:
            decoder: Decoder = BeamDecoder(
                vocabulary, DecodeOptions(decoder="beam", workers=0), settings=rest[0]
            )
        finally:
            quiet.setLevel(level)
    else:
        decoder = GreedyDecoder(vocabulary)
    return decoder, get_writers(list(recipe.formats), recipe.subtitles, recipe.case), recipe


def _finish(
    state: tuple[Decoder, list[Writer], WorkerRecipe],
    emissions: Emissions,
    item: AudioItem,
    header: bool,
) -> FileResult | tuple[Transcript, list[str | Exception]]:
    """In a worker: decode one file, then write its outputs (or render them for a stream)."""
    decoder, writers, recipe = state
    transcript = dataclasses.replace(
        decoder.decode(emissions), model=recipe.model, decoder=decoder.name
    )
    if recipe.write:
        return write_outputs(transcript, item, writers, None, False)
    texts: list[str | Exception] = []
    for w in writers:
        try:
            texts.append(w.stream_text(transcript, item, header))
        except Exception as exc:  # noqa: BLE001 - reported as that output's failure
            texts.append(exc)
    return transcript, texts
