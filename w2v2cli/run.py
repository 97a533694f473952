"""The local driver: what ``w2v2 transcribe`` and ``w2v2 align`` call. ``iter_run``/``run``
skip finished files, get each file's emissions, turn them into a transcript (a
``Transcriber``'s decoder, or an ``Aligner`` with the file's text: ``iter_align``) and write
its outputs; ``scale/ray_data.py`` is the same driver on Ray Data. Both use
``pipeline.outputs`` for what a run does with results.

The straight pipeline, each stage in its own subpackage::

    AudioItem ─► Engine.emissions (audio → chunks → batches → stitched log-probs)
              ─► Decoder.submit (greedy | beam) ─► Transcript ─► Writer.write ─► files

A file that fails at any stage (audio, decoding, timing, segmenting, writing) fails alone:
its ``FileResult`` says why and the run goes on. Only faults of the whole run (the model,
the LM, an unwritable output folder) raise.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from typing import TextIO

from .audio import audio_duration
from .errors import LMError, W2V2Error, reason_of
from .inference import file_loader
from .options import RunOptions
from .pipeline import (
    Aligner,
    FilePipeline,
    NullProgress,
    Progress,
    RunSummary,
    TextsPipeline,
    Transcriber,
    pending,
    write_outputs,
)
from .records import AudioItem, FileResult


def iter_run(
    items: Sequence[AudioItem],
    transcriber: FilePipeline,
    *,
    progress: Progress | None = None,
    stream: TextIO | None = None,
) -> Iterator[FileResult]:
    """Transcribe ``items`` and write their outputs, yielding one ``FileResult`` per item.

    Items whose every output already exists are skipped unless ``overwrite``. With
    ``output.stdout`` results go to ``stream`` (default: ``sys.stdout``) as soon as each
    file is done: with several inputs, a ``==> path <==`` line precedes each result (like
    ``head``), except for JSON, which is one compact object per line (JSON Lines).
    Raises ``OutputError`` before any work when the output folder cannot be written, and
    ``LMError`` when the language model turns out to be unusable in the decode workers.
    ``transcriber`` is any ``FilePipeline``: a ``Transcriber``, or an aligner with its texts.
    """
    progress = progress or NullProgress()
    todo, skipped, writers, stream = pending(items, transcriber.options.output, stream)
    yield from skipped
    if not todo:
        return
    # Without a progress bar nothing needs the total, which costs a look into every file.
    if isinstance(progress, NullProgress):
        total = None
    else:
        durations = [audio_duration(i.path) for i in todo]
        total = sum(d for d in durations if d) if any(durations) else None
    progress.start(len(todo), total)
    header = stream is not None and len(items) > 1
    # Decoding, formatting and writing in worker processes (``pipeline/workers.py``) where
    # the pipeline has them (a Transcriber); else here, through ``submit``.
    pool = transcriber.output_workers(writers, stream is not None)
    workers = pool.workers if pool is not None else transcriber.workers
    queue: deque[tuple[AudioItem, Future]] = deque()

    def finish(item: AudioItem, fut: Future) -> FileResult:
        progress.file_done()
        try:
            got = fut.result()
        except LMError:
            raise  # the LM is broken for every file, not this one
        except W2V2Error as exc:
            return FileResult(item, "failed", error=reason_of(exc))
        if pool is None:
            return write_outputs(transcriber.label(got), item, writers, stream, header)
        if isinstance(got, FileResult):  # written by the worker
            return dataclasses.replace(got, item=item)
        transcript, texts = got  # rendered by the worker, for the stream
        return write_outputs(transcript, item, writers, stream, header, texts)

    loaders = [file_loader(item.path, transcriber.sampling_rate) for item in todo]
    # Enough files in flight to keep every worker busy while the model runs, bounded so
    # that memory stays flat however many files there are.
    max_queue = 2 * max(1, workers) + 2
    for idx, em in transcriber.emissions(loaders, on_audio=progress.advance_audio):
        item = todo[idx]
        if isinstance(em, W2V2Error):
            progress.file_done()
            yield FileResult(item, "failed", error=reason_of(em))
            continue
        if pool is not None:
            fut = pool.submit(item, em, header)
        else:
            fut = transcriber.submit(item, em)
        queue.append((item, fut))
        while queue and (queue[0][1].done() or len(queue) > max_queue):
            yield finish(*queue.popleft())
    while queue:
        yield finish(*queue.popleft())


def run(
    items: Sequence[AudioItem],
    options: RunOptions | None = None,
    *,
    transcriber: Transcriber | None = None,
    progress: Progress | None = None,
    stream: TextIO | None = None,
    on_result: Callable[[FileResult], None] | None = None,
) -> RunSummary:
    """Run ``iter_run`` to the end and return the summary (the library's main entry)."""
    started = time.perf_counter()
    own = transcriber is None
    transcriber = transcriber or Transcriber(options)
    summary = RunSummary()
    try:
        for result in iter_run(items, transcriber, progress=progress, stream=stream):
            summary.results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        if progress is not None:
            progress.close()
        if own:
            transcriber.close()
    summary.wall_seconds = time.perf_counter() - started
    return summary


def iter_align(
    pairs: Sequence[tuple[AudioItem, str]],
    aligner: Aligner,
    *,
    progress: Progress | None = None,
    stream: TextIO | None = None,
) -> Iterator[FileResult]:
    """Align each item's text and write its outputs, as ``iter_run`` does for transcripts
    (skipping finished files, ``--stdout``, one failure per file)."""
    pipeline = TextsPipeline(aligner, dict(pairs))
    return iter_run([item for item, _ in pairs], pipeline, progress=progress, stream=stream)
