"""What ``w2v2 transcribe`` calls: ``Transcriber`` (a model and a decoder, loaded once),
``iter_run``/``run`` (skip, transcribe, write) and ``RunSummary``.

The straight pipeline, each stage in its own subpackage::

    AudioItem ─► Engine.emissions (audio → chunks → batches → stitched log-probs)
              ─► Decoder.submit (greedy | beam) ─► Transcript ─► Writer.write ─► files

A file that fails at any stage (audio, decoding, timing, segmenting, writing) fails alone:
its ``FileResult`` says why and the run goes on. Only faults of the whole run (the model,
the LM, an unwritable output folder) raise.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TextIO

import numpy as np

from .errors import ConfigError, LMError, W2V2Error, reason_of
from .fsutil import check_output_dir
from .options import OutputOptions, RunOptions
from .records import AudioItem, Emissions, FileResult, Transcript

if TYPE_CHECKING:
    from .decoding import Decoder
    from .decoding.pool import WorkerPool
    from .inference import AudioLoader, Runner
    from .models import LoadedModel
    from .output import Writer

log = logging.getLogger("w2v2cli")


class Progress(Protocol):
    """What a run reports as it goes (the CLI draws a bar; ``NullProgress`` does nothing)."""

    def start(self, files: int, audio_seconds: float | None) -> None: ...
    def advance_audio(self, seconds: float) -> None: ...
    def file_done(self) -> None: ...
    def close(self) -> None: ...


class FilePipeline(Protocol):
    """What ``iter_run`` drives: emissions per file and a transcript per file's emissions.

    ``Transcriber`` (a decoder) and ``alignment.Aligner`` (a known text per file) are the
    two. ``workers`` is how many files ``submit`` works on at once (0: synchronously).
    """

    options: RunOptions

    @property
    def sampling_rate(self) -> int: ...
    @property
    def workers(self) -> int: ...
    def emissions(
        self, loaders: Iterable[AudioLoader], on_audio: Callable[[float], None] | None = None
    ) -> Iterator[tuple[int, Emissions | W2V2Error]]: ...
    def submit(self, item: AudioItem, emissions: Emissions) -> Future[Transcript]: ...
    def label(self, transcript: Transcript) -> Transcript: ...


class NullProgress:
    """Reports nothing; for ``--quiet`` and for library callers."""

    def start(self, files: int, audio_seconds: float | None) -> None:
        pass

    def advance_audio(self, seconds: float) -> None:
        pass

    def file_done(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Transcriber:
    """Load a model once; transcribe arrays, files or whole runs.

    >>> t = Transcriber(RunOptions())                       # doctest: +SKIP
    >>> t.transcribe_file("talk.wav").text                 # doctest: +SKIP

    The model is this transcriber's own (``inference.Engine``); ``close`` frees it and the
    decoder's workers. ``exact=False`` turns exact batching off (benchmarks only);
    ``notify`` receives one-line notices (a first OpenVINO conversion).
    """

    def __init__(
        self,
        options: RunOptions | None = None,
        *,
        exact: bool = True,
        decoder: Decoder | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        from .inference import Engine

        self.options = options or RunOptions()
        self.engine = Engine(
            self.options.model,
            self.options.chunking,
            batch_size=self.options.batch_size,
            max_padding=self.options.max_padding,
            exact=exact,
            notify=notify,
            vad=self.options.vad,
        )
        self._decoder = decoder
        self._render_pool: WorkerPool | None = None

    @property
    def loaded(self) -> LoadedModel:
        return self.engine.loaded

    @property
    def runner(self) -> Runner:
        return self.engine.runner

    @property
    def sampling_rate(self) -> int:
        return self.engine.sampling_rate

    @property
    def decoder(self) -> Decoder:
        """The run's decoder, built on first use (``decoding.make_decoder``)."""
        if self._decoder is None:
            from .decoding import make_decoder

            self._decoder = make_decoder(
                self.loaded.vocabulary, self.options.decoding, self.loaded.find_lm_dir
            )
        return self._decoder

    def close(self) -> None:
        if self._render_pool is not None:
            self._render_pool.close()
            self._render_pool = None
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
        self.engine.close()

    def __enter__(self) -> Transcriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def emissions(
        self, loaders: Iterable[AudioLoader], on_audio: Callable[[float], None] | None = None
    ) -> Iterator[tuple[int, Emissions | W2V2Error]]:
        """The engine's emissions (see ``inference.Engine.emissions``)."""
        return self.engine.emissions(loaders, on_audio)

    def label(self, transcript: Transcript) -> Transcript:
        """``transcript`` with this run's model and decoder names (for the JSON output)."""
        return dataclasses.replace(transcript, model=self.loaded.name, decoder=self.decoder.name)

    @property
    def workers(self) -> int:
        """Files the decoder works on at once (builds the decoder)."""
        return self.render_workers or self.decoder.workers

    @property
    def render_workers(self) -> int:
        """Processes that decode greedily *and* render the outputs (``submit_rendered``),
        0 for none: ``--decode-workers N`` with greedy decoding (beam search has its own
        workers). Off by default: on a GPU this process's one thread decoding, segmenting
        and formatting every file is what held the GPU back (benchmarks/RESULTS.md, GPU),
        but on 2 cores the workers measured no faster than one process (README,
        Performance), and no GPU machine was at hand to measure them on."""
        from .decoding import GreedyDecoder

        if not isinstance(self.decoder, GreedyDecoder):
            return 0
        return self.options.decoding.workers or 0

    def submit_rendered(
        self, item: AudioItem, emissions: Emissions, writers: list[Writer]
    ) -> Future[tuple[Transcript, list[str | Exception]]]:
        """Decode greedily and render every writer's text in a worker process (see
        ``render_workers``); the future fails only with ``W2V2Error``."""
        if self._render_pool is None:
            from .decoding.pool import WorkerPool

            out = self.options.output
            self._render_pool = WorkerPool(
                self.render_workers,
                _renderer,
                self.loaded.vocabulary,
                [w.extension for w in writers],
                out.subtitles,
                out.case,
            )
        return self._render_pool.submit(_decode_and_render, emissions, item, self.loaded.name)

    def submit(self, item: AudioItem, emissions: Emissions) -> Future[Transcript]:
        """Decode one file's emissions (``FilePipeline``)."""
        return self.decoder.submit(emissions)

    def transcribe_array(self, samples: np.ndarray) -> Transcript:
        """Transcribe mono float32 samples already at ``self.sampling_rate``."""
        ((_, em),) = list(self.emissions([lambda: np.asarray(samples, dtype=np.float32)]))
        if isinstance(em, W2V2Error):
            raise em
        return self.label(self.decoder.decode(em))

    def transcribe_file(self, path: str | Path) -> Transcript:
        """Transcribe one audio file of any supported format."""
        return self.transcribe_files([path])[0]

    def transcribe_files(self, paths: Sequence[str | Path]) -> list[Transcript]:
        """Transcribe several files, batched together; raises on the first bad file."""
        from .inference import file_loader

        loaders = [file_loader(Path(p), self.sampling_rate) for p in paths]
        futures: list[Future[Transcript]] = []
        for _, em in self.emissions(loaders):
            if isinstance(em, W2V2Error):
                raise em
            futures.append(self.decoder.submit(em))
        return [self.label(f.result()) for f in futures]


def _renderer(vocabulary: Any, formats: list[str], subtitles: Any, case: str) -> tuple:
    """A render worker's state (``Transcriber.submit_rendered``): a greedy decoder and
    the run's writers."""
    from .decoding import GreedyDecoder
    from .output import get_writers

    return GreedyDecoder(vocabulary), get_writers(formats, subtitles, case)


def _decode_and_render(
    state: tuple, emissions: Emissions, item: AudioItem, model: str
) -> tuple[Transcript, list[str | Exception]]:
    """In a worker: the file's transcript and each writer's text (or its error)."""
    decoder, writers = state
    transcript = dataclasses.replace(decoder.decode(emissions), model=model, decoder=decoder.name)
    texts: list[str | Exception] = []
    for w in writers:
        try:
            texts.append(w.render(transcript, item))
        except Exception as exc:  # noqa: BLE001 - reported as that output's failure
            texts.append(exc)
    return transcript, texts


@dataclass
class RunSummary:
    """Counts and times for the end-of-run summary and the exit status."""

    results: list[FileResult] = field(default_factory=list)
    wall_seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def audio_seconds(self) -> float:
        return sum(r.duration for r in self.results if r.status == "done")

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]


def write_outputs(
    transcript: Transcript,
    item: AudioItem,
    writers: list[Writer],
    stream: TextIO | None,
    header: bool,
    rendered: Sequence[str | Exception] | None = None,
) -> FileResult:
    """Write every output of one file (to ``stream`` if given, else to files); any failure
    fails this file only. ``rendered``: each writer's text already made (or the error
    making it raised) by a decode worker (``Transcriber.submit_rendered``)."""
    paths: list[Path] = []
    for n, w in enumerate(writers):
        try:
            if rendered is not None:
                if isinstance(rendered[n], Exception):
                    raise rendered[n]
                paths.append(w.write_text(str(rendered[n]), item))
            elif stream is not None:
                stream.write(w.stream_text(transcript, item, header))
                stream.flush()
            else:
                paths.append(w.write(transcript, item))
        except BrokenPipeError:
            raise  # the reader of --stdout is gone (`| head`): the whole run is over
        except OSError as exc:
            where = "standard output" if stream is not None else str(w.output_path(item))
            reason = exc.strerror or str(exc) or type(exc).__name__
            return FileResult(
                item, "failed", transcript.duration, error=f"cannot write {where}: {reason}"
            )
        except Exception as exc:  # a formatting bug must not cost the other files
            log.debug("writing %s failed", item.path, exc_info=True)
            return FileResult(
                item,
                "failed",
                transcript.duration,
                error=f"cannot format the {w.extension} output: {type(exc).__name__}: {exc}",
            )
    return FileResult(item, "done", transcript.duration, transcript, outputs=tuple(paths))


def pending(
    items: Sequence[AudioItem], out: OutputOptions, stream: TextIO | None = None
) -> tuple[list[AudioItem], list[FileResult], list[Writer], TextIO | None]:
    """What a run has to do: the items to process, the ``skipped`` results of those whose
    every output exists (unless ``overwrite``), the writers, and the stream results go to
    (``sys.stdout`` by default with ``out.stdout``; None when writing files).

    Raises ``ConfigError`` for --stdout with several formats and ``OutputError`` when the
    output folder cannot be written, before any work.
    """
    from .output import get_writers

    writers = get_writers(out.formats, out.subtitles, out.case)
    if out.stdout and len(writers) != 1:
        raise ConfigError("--stdout writes exactly one format; choose it with -f")
    if out.stdout:
        stream = stream if stream is not None else sys.stdout
    else:
        stream = None
        if out.output_dir is not None:
            check_output_dir(out.output_dir)
    todo: list[AudioItem] = []
    skipped: list[FileResult] = []
    for item in items:
        if (
            stream is None
            and not out.overwrite
            and all(w.output_path(item).exists() for w in writers)
        ):
            skipped.append(FileResult(item, "skipped"))
        else:
            todo.append(item)
    return todo, skipped, writers, stream


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
    from .audio import audio_duration
    from .inference import file_loader

    progress = progress or NullProgress()
    todo, skipped, writers, stream = pending(items, transcriber.options.output, stream)
    yield from skipped
    if not todo:
        return
    durations = [audio_duration(i.path) for i in todo]
    total = sum(d for d in durations if d) if any(durations) else None
    progress.start(len(todo), total)
    workers = transcriber.workers
    queue: deque[tuple[AudioItem, Future]] = deque()
    header = stream is not None and len(items) > 1

    # Greedy decoding and rendering in worker processes (``Transcriber.render_workers``),
    # for files only: a stream is written in order by this process.
    render = stream is None and getattr(transcriber, "render_workers", 0) > 0

    def finish(item: AudioItem, fut: Future) -> FileResult:
        progress.file_done()
        rendered = None
        try:
            if render:
                transcript, rendered = fut.result()
            else:
                transcript = transcriber.label(fut.result())
        except LMError:
            raise  # the LM is broken for every file, not this one
        except W2V2Error as exc:
            return FileResult(item, "failed", error=reason_of(exc))
        return write_outputs(transcript, item, writers, stream, header, rendered)

    loaders = [file_loader(item.path, transcriber.sampling_rate) for item in todo]
    max_queue = 2 * max(1, workers) + 2
    for idx, em in transcriber.emissions(loaders, on_audio=progress.advance_audio):
        item = todo[idx]
        if isinstance(em, W2V2Error):
            progress.file_done()
            yield FileResult(item, "failed", error=reason_of(em))
            continue
        if render:
            queue.append((item, transcriber.submit_rendered(item, em, writers)))  # type: ignore[attr-defined]
        else:
            queue.append((item, transcriber.submit(item, em)))
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
