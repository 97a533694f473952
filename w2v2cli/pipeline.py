"""The straight pipeline: audio items in, transcripts and written files out.

``Transcriber`` holds what is loaded once per run (model, runner, decoder) and offers the
library API; ``Transcriber.emissions`` is the engine shared by ``transcribe`` and ``eval``:
it decodes audio a file or two ahead in a background thread, cuts files into chunks,
batches chunks *across files* in windows sorted by length (less padding), and hands back
each file's stitched log-probabilities in input order as soon as they are complete.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from . import chunking
from .audio import audio_duration, load_audio
from .decoders import Decoder, GreedyDecoder
from .errors import AudioError, ConfigError, W2V2Error
from .options import DecodeOptions, ModelOptions, RunOptions
from .progress import NullProgress
from .records import AudioItem, Chunk, Emissions, FileResult, Transcript
from .runner import LoadedModel, Runner, load_model
from .writers import Writer, get_writers

log = logging.getLogger("w2v2cli")

AudioLoader = Callable[[], np.ndarray]


def make_decoder(
    options: DecodeOptions, loaded: LoadedModel, model_options: ModelOptions | None = None
) -> Decoder:
    """Greedy unless beam search is asked for or an LM is available (``auto``).

    ``auto`` with no ``--lm`` uses the model's own ``language_model/`` when it has one.
    """
    model_options = model_options or ModelOptions(model=loaded.name)
    kind = options.decoder
    model_lm = None
    if kind != "greedy" and options.lm is None:
        model_lm = loaded.find_lm_dir(model_options.cache_dir, model_options.revision)
    if kind == "auto":
        kind = "beam" if (options.lm is not None or model_lm is not None) else "greedy"
    if kind == "greedy":
        if options.lm is not None:
            raise ConfigError("--lm needs beam search; it cannot be used with --decoder greedy")
        return GreedyDecoder(loaded.vocabulary)
    from .beam import BeamDecoder

    if options.lm is None and model_lm is not None:
        options = dataclasses.replace(options, lm=model_lm)
    return BeamDecoder(loaded.vocabulary, options)


@dataclass
class _FileState:
    chunks: list[Chunk]
    outputs: list[np.ndarray | None]
    num_samples: int
    remaining: int


class Transcriber:
    """Load a model once; transcribe arrays, files or whole runs.

    >>> t = Transcriber(RunOptions())                       # doctest: +SKIP
    >>> t.transcribe_file("talk.wav").text                 # doctest: +SKIP
    """

    def __init__(
        self,
        options: RunOptions | None = None,
        *,
        exact: bool = True,
        decoder: Decoder | None = None,
    ) -> None:
        self.options = options or RunOptions()
        self.loaded = load_model(self.options.model)
        self.runner = Runner(
            self.loaded,
            exact=exact,
            max_padding=self.options.max_padding,
            batch_size=self.options.batch_size,
        )
        self.plan = chunking.plan(
            self.options.chunking, self.loaded.sampling_rate, self.loaded.samples_per_frame
        )
        self._decoder = decoder

    @property
    def decoder(self) -> Decoder:
        if self._decoder is None:
            self._decoder = make_decoder(self.options.decoding, self.loaded, self.options.model)
        return self._decoder

    @property
    def sampling_rate(self) -> int:
        return self.loaded.sampling_rate

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()

    def __enter__(self) -> Transcriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the engine -------------------------------------------------------------------

    def emissions(
        self,
        loaders: Iterable[AudioLoader],
        on_audio: Callable[[float], None] | None = None,
    ) -> Iterator[tuple[int, Emissions | W2V2Error]]:
        """Yield ``(index, Emissions)`` per loader, in order; a failed load yields the error.

        Chunks of several files share batches. A window of at least ``8 * batch_size``
        chunks is gathered and split into batches by ``chunking.plan_batches`` (longest
        first, padding limited by the runner's device policy), so model activations exist
        only for the batch in flight. ``on_audio`` is called
        with the seconds of audio each processed chunk completes (for progress).
        """
        batch_size = self.runner.batch_size
        window = max(8 * batch_size, 32)
        sr = self.loaded.sampling_rate
        states: dict[int, _FileState] = {}
        ready: dict[int, Emissions | W2V2Error] = {}
        next_out = 0
        source = iter(enumerate(loaders))
        inflight: deque[tuple[int, Future[np.ndarray]]] = deque()
        exhausted = False

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="w2v2-audio") as pool:

            def top_up() -> None:
                nonlocal exhausted
                while not exhausted and len(inflight) < 2:
                    try:
                        idx, loader = next(source)
                    except StopIteration:
                        exhausted = True
                        return
                    inflight.append((idx, pool.submit(loader)))

            while True:
                pending: list[Chunk] = []
                top_up()
                while inflight and len(pending) < window:
                    idx, fut = inflight.popleft()
                    top_up()
                    try:
                        samples = fut.result()
                    except W2V2Error as exc:
                        ready[idx] = exc
                        continue
                    except Exception as exc:  # a decoder library failing in a new way
                        ready[idx] = W2V2Error(f"{type(exc).__name__}: {exc}")
                        continue
                    chunks = chunking.split(idx, samples, self.plan)
                    if not chunks:
                        ready[idx] = W2V2Error("no audio samples")
                        continue
                    states[idx] = _FileState(
                        chunks, [None] * len(chunks), len(samples), len(chunks)
                    )
                    pending.extend(chunks)
                while next_out in ready:
                    yield next_out, ready.pop(next_out)
                    next_out += 1
                if not pending:
                    if exhausted and not inflight:
                        break
                    continue
                plan = chunking.plan_batches(
                    [c.length for c in pending], batch_size, self.runner.max_padding
                )
                for indices in plan:
                    batch = [pending[i] for i in indices]
                    outputs = self.runner.run(batch)
                    for chunk, out in zip(batch, outputs, strict=True):
                        state = states[chunk.file_index]
                        state.outputs[chunk.index] = out
                        state.remaining -= 1
                        if on_audio is not None:
                            kept = chunk.length - chunk.stride_left - chunk.stride_right
                            on_audio(max(kept, 0) / sr)
                        if state.remaining == 0:
                            del states[chunk.file_index]
                            ready[chunk.file_index] = chunking.stitch(
                                state.chunks,
                                [o for o in state.outputs if o is not None],
                                self.plan,
                                state.num_samples,
                            )
                    while next_out in ready:
                        yield next_out, ready.pop(next_out)
                        next_out += 1
            while next_out in ready:
                yield next_out, ready.pop(next_out)
                next_out += 1

    # -- conveniences for scripts -----------------------------------------------------

    def _finish(self, transcript: Transcript) -> Transcript:
        return dataclasses.replace(transcript, model=self.loaded.name, decoder=self.decoder.name)

    def transcribe_array(self, samples: np.ndarray) -> Transcript:
        """Transcribe mono float32 samples already at ``self.sampling_rate``."""
        ((_, em),) = list(self.emissions([lambda: np.asarray(samples, dtype=np.float32)]))
        if isinstance(em, W2V2Error):
            raise em
        return self._finish(self.decoder.decode(em))

    def transcribe_file(self, path: str | Path) -> Transcript:
        """Transcribe one audio file of any supported format."""
        return self.transcribe_files([path])[0]

    def transcribe_files(self, paths: Sequence[str | Path]) -> list[Transcript]:
        """Transcribe several files, batched together; raises on the first bad file."""
        sr = self.sampling_rate
        loaders = [_loader(Path(p), sr) for p in paths]
        futures: list[Future[Transcript]] = []
        for _, em in self.emissions(loaders):
            if isinstance(em, W2V2Error):
                raise em
            futures.append(self.decoder.submit(em))
        return [self._finish(f.result()) for f in futures]


def _loader(path: Path, sampling_rate: int) -> AudioLoader:
    return lambda: load_audio(path, sampling_rate)


# -- a whole run: skip, transcribe, write ------------------------------------------------


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


def expand_formats(formats: Iterable[str]) -> tuple[str, ...]:
    """``all`` → every format; duplicates removed, order kept."""
    from .options import FORMATS

    out: list[str] = []
    for f in formats:
        for g in FORMATS if f == "all" else (f,):
            if g not in out:
                out.append(g)
    return tuple(out)


def iter_run(
    items: Sequence[AudioItem],
    transcriber: Transcriber,
    *,
    progress: NullProgress | None = None,
    stream: TextIO | None = None,
) -> Iterator[FileResult]:
    """Transcribe ``items`` and write their outputs, yielding one ``FileResult`` per item.

    Items whose every output already exists are skipped unless ``overwrite``. With
    ``output.stdout`` results go to ``stream`` as soon as each file is done: with several
    inputs, a ``==> path <==`` line precedes each result (like ``head``), except for JSON,
    which is one compact object per line (JSON Lines).
    """
    options = transcriber.options
    out = options.output
    progress = progress or NullProgress()
    writers: list[Writer] = get_writers(out.formats, out.subtitles, out.case)
    if out.stdout and len(writers) != 1:
        raise ConfigError("--stdout takes exactly one format")

    todo: list[AudioItem] = []
    for item in items:
        if not out.stdout and not out.overwrite and all(
            w.output_path(item).exists() for w in writers
        ):
            yield FileResult(item, "skipped")
            continue
        todo.append(item)
    if not todo:
        return
    durations = [audio_duration(i.path) for i in todo]
    total = sum(d for d in durations if d) if any(durations) else None
    progress.start(len(todo), total)
    sr = transcriber.sampling_rate
    decoder = transcriber.decoder
    queue: deque[tuple[AudioItem, Future[Transcript]]] = deque()
    header = out.stdout and len(items) > 1

    def finish(item: AudioItem, fut: Future[Transcript]) -> FileResult:
        try:
            transcript = transcriber._finish(fut.result())
        except W2V2Error as exc:
            return FileResult(item, "failed", error=str(exc))
        paths: list[Path] = []
        try:
            for w in writers:
                if out.stdout and stream is not None:
                    w.write_stream(transcript, item, stream, header=header)
                    stream.flush()
                else:
                    paths.append(w.write(transcript, item))
        except OSError as exc:
            return FileResult(item, "failed", transcript.duration, error=f"cannot write: {exc}")
        return FileResult(item, "done", transcript.duration, transcript, outputs=tuple(paths))

    loaders = [_loader(item.path, sr) for item in todo]
    max_queue = 2 * max(1, getattr(decoder, "workers", 1) or 1) + 2
    for idx, em in transcriber.emissions(loaders, on_audio=progress.advance_audio):
        item = todo[idx]
        if isinstance(em, W2V2Error):
            reason = em.reason if isinstance(em, AudioError) else str(em)
            progress.file_done()
            yield FileResult(item, "failed", error=reason)
            continue
        queue.append((item, decoder.submit(em)))
        while queue and (queue[0][1].done() or len(queue) > max_queue):
            progress.file_done()
            yield finish(*queue.popleft())
    while queue:
        progress.file_done()
        yield finish(*queue.popleft())


def run(
    items: Sequence[AudioItem],
    options: RunOptions | None = None,
    *,
    transcriber: Transcriber | None = None,
    progress: NullProgress | None = None,
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
