"""One ``Engine.emissions`` call: loaders in, each file's stitched log-probabilities out.

``EmissionRun`` is that call as named steps. A reading thread (``reading.Reader``) decodes
audio block by block and cuts it into chunks as it arrives, a bounded queue ahead of the
model, computing each chunk's model input and frame loudness there.
The run then repeats, until the input is read:

- ``_read_window``: take the next window of chunks from the reader;
- ``_calibrate``: int8 sees its calibration chunks first (once, on the first window);
- ``_plan``: split the window into batches (``chunking.plan_batches``, longest first);
- ``_submit``: start a batch, keeping at most one in flight (CUDA);
- ``_collect``: a started batch's log-probabilities into its files' kept frames;
- ``_finish`` / ``_fail``: a file complete (stitched) or given up on;
- ``_ready``: hand on the files that are done, in input order.

A chunk's samples are dropped once the model has run it, and a file is only its chunks'
kept frames until it is complete, so memory does not grow with a file's length.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from .. import chunking
from ..errors import W2V2Error
from ..records import Chunk, Emissions
from .quantize import CALIBRATION_CHUNKS
from .readers import AudioReaders
from .reading import AudioLoader, Prepared, Reader
from .runner import Runner, Started
from .vad import SileroVad

log = logging.getLogger("w2v2cli")

#: What ``EmissionRun`` yields: a file's input index and its emissions, or why it failed.
Result = tuple[int, "Emissions | W2V2Error"]


@dataclass
class _FileState:
    """A file being run: its chunks' kept frames so far; ``num_samples`` and ``count`` are
    known once its audio has been read to the end."""

    kept: list[chunking.KeptFrames] = field(default_factory=list)
    num_samples: int | None = None
    count: int | None = None
    reported: float = 0.0  # seconds of progress reported so far

    @property
    def complete(self) -> bool:
        return self.count is not None and len(self.kept) == self.count


class EmissionRun:
    """``Engine.emissions`` over one iterable of loaders; iterate it once for
    ``(index, Emissions | W2V2Error)`` per loader, in input order.

    ``runner`` and ``plan`` are the engine's; ``boundary`` is the token that fills a gap
    left by the VAD (``chunking.join``); ``vad`` cuts chunks at pauses in the reading
    thread; ``on_audio`` receives the seconds of audio each chunk completes; ``trim``, if
    given, gives freed heap memory back to the system after each batch (after each window
    on CUDA, where the host heap holds no activations).

    Windows: at batch size 1 (the CPU default) a window is one chunk, so chunks run in
    input order and each file comes out as soon as its own chunks have run; otherwise
    ``max(8 * batch_size, 32)`` chunks, sorted into batches of similar lengths (less
    padding). Until int8 is calibrated, the first window holds at least
    ``quantize.CALIBRATION_CHUNKS`` chunks, the ones it calibrates on.

    One batch in flight (CUDA, ``Runner.submit``): a started batch that is not yet
    computed stays in flight while the next is prepared and started, and is collected
    before the run would wait for audio, so no result waits on the reader; a batch
    already computed (CPU) is collected at once. A batch that fails fails only its files.
    When the loaders' iterable itself raises, the files read before it are yielded first.
    The reading thread stops when the iteration ends, also early (a consumer that stops,
    Ctrl-C).
    """

    def __init__(
        self,
        runner: Runner,
        plan: chunking.ChunkPlan,
        loaders: Iterable[AudioLoader],
        *,
        boundary: int,
        vad: SileroVad | None = None,
        on_audio: Callable[[float], None] | None = None,
        trim: Callable[[], None] | None = None,
        readers: AudioReaders | None = None,
    ) -> None:
        self.runner, self.plan, self.loaders = runner, plan, loaders
        self.boundary, self.vad, self.on_audio, self.trim = boundary, vad, on_audio, trim
        self.readers = readers
        self.batch_size = runner.batch_size
        self.window = 1 if self.batch_size == 1 else max(8 * self.batch_size, 32)
        self.calibration = CALIBRATION_CHUNKS if runner.needs_calibration else 0
        self.on_cuda = runner.backend.on_cuda
        self.sampling_rate = runner.loaded.sampling_rate
        self.vocab_size = runner.loaded.vocabulary.size
        self._states: dict[int, _FileState] = {}
        self._failed: set[int] = set()  # files given up on: their later chunks are dropped
        self._done_files: dict[int, Emissions | W2V2Error] = {}
        self._next_out = 0
        self._in_flight: tuple[list[Chunk], Started] | None = None
        self._read_all = False  # the reader has given its last item
        self._fatal: BaseException | None = None  # the loaders' iterable raised this
        self._reader: Reader | None = None
        self._prepared: dict[tuple[int, int], Prepared] = {}  # (file, chunk) → ahead

    def __iter__(self) -> Iterator[Result]:
        if self._reader is not None:
            raise RuntimeError("an EmissionRun is iterated once")
        readers = self.readers if self.readers is not None and self.readers.claim() else None
        self._reader = Reader(
            self.loaders,
            self.plan,
            self.vad,
            max(2 * self.batch_size, 8),
            readers,
            self._prepare,
        )
        try:
            while True:
                window = yield from self._read_window()
                yield from self._ready()
                if not window:  # the input is read: the batch in flight is the last
                    self._collect_in_flight()
                    break
                self._calibrate(window)
                batches = self._plan(window)
                del window  # a chunk's samples go with its batch
                while batches:
                    batch = [c for c in batches.pop() if c.file_index in self._states]
                    if not batch:
                        continue
                    self._submit(batch)
                    del batch
                    yield from self._ready()
                if self.trim is not None and self.on_cuda:  # the host heap holds no activations
                    self.trim()
            yield from self._ready()
            if self._fatal is not None:
                raise self._fatal
        finally:
            # On an early exit (Ctrl-C, a consumer that stops) the reader stops at its next
            # chunk rather than reading on.
            self._reader.close()
            if readers is not None:
                readers.release()

    def _read_window(self) -> Generator[Result, None, list[Chunk]]:
        """The next window of chunks (returned; fewer at the end of the input, none once it
        is read). Whenever the reader has nothing ready, the batch in flight is collected
        and the files it completes are handed on (yielded) before waiting for audio."""
        assert self._reader is not None
        size = max(self.window, self.calibration) if self.runner.needs_calibration else self.window
        window: list[Chunk] = []
        while not self._read_all and len(window) < size:
            if self._in_flight is not None and self._reader.queue.empty():
                self._collect_in_flight()
                yield from self._ready()
            chunk = self._take(self._reader.queue.get())
            if chunk is not None:
                window.append(chunk)
        return window

    def _take(self, item: tuple) -> Chunk | None:
        """One event of the reader; a chunk to run, if it is one."""
        kind, idx = item[0], item[1]
        if kind == "done":
            self._read_all = True
            return None
        if kind == "fatal":  # the loaders themselves failed: the files read so far
            self._read_all, self._fatal = True, item[2]  # are finished first
            return None
        if idx in self._failed:
            return None
        if kind == "error":
            self._fail(idx, item[2])
            return None
        state = self._states.setdefault(idx, _FileState())
        if kind == "chunk":
            chunk = item[2]
            self._prepared[chunk.file_index, chunk.index] = item[3]
            return chunk
        state.num_samples, state.count = item[2], item[3]  # "end"
        if state.count == 0:
            del self._states[idx]
            if state.num_samples and self.vad is not None:
                self._done_files[idx] = self._no_speech(state.num_samples)  # nothing to say
                if self.on_audio is not None:
                    self.on_audio(state.num_samples / self.sampling_rate)
            else:
                self._fail(idx, W2V2Error("no audio samples"))
        elif state.complete:
            self._finish(idx, state)
        return None

    def _prepare(self, chunk: Chunk) -> Prepared:
        """In the reading thread: ``chunk``'s model input and frame loudness, computed
        ahead so that the model's thread only batches and runs them. Features that fail
        here are left to the batch, which fails as it would have."""
        features = None
        if chunk.length >= self.runner.min_samples:
            try:
                features = self.runner.features(chunk.samples)
            except Exception:  # noqa: BLE001 - computed again, and reported, with its batch
                features = None
        return features, chunking.chunk_energy(chunk, self.plan.samples_per_frame)

    def _calibrate(self, window: list[Chunk]) -> None:
        """Until int8 is calibrated: calibrate it on the first chunks of this window."""
        if self.runner.needs_calibration:
            self.runner.calibrate(window[: self.calibration])

    def _plan(self, window: list[Chunk]) -> list[list[Chunk]]:
        """The window's batches, to be run from the end of the list (``pop``)."""
        lengths = [c.length for c in window]
        plan = chunking.plan_batches(lengths, self.batch_size, self.runner.max_padding)
        return [[window[i] for i in indices] for indices in reversed(plan)]

    def _submit(self, batch: list[Chunk]) -> None:
        """Start one batch, then collect the one in flight (on CUDA the host finishes the
        last batch's files while the GPU computes this one). A batch already computed is
        collected at once; one still running stays in flight."""
        features = [self._prepared.get((c.file_index, c.index), (None, None))[0] for c in batch]
        try:
            started = self.runner.submit(batch, features)
        except Exception as exc:  # noqa: BLE001 - these files fail, not the run
            self._collect_in_flight()
            self._fail_batch(batch, exc)
            return
        self._collect_in_flight()
        if started.done:
            self._collect(batch, started)
        else:
            self._in_flight = (batch, started)

    def _collect_in_flight(self) -> None:
        if self._in_flight is not None:
            batch, started = self._in_flight
            self._in_flight = None
            self._collect(batch, started)

    def _collect(self, batch: list[Chunk], started: Started) -> None:
        """A started batch's log-probabilities into its files (a failure fails them)."""
        try:
            outputs = started()
        except Exception as exc:  # noqa: BLE001 - these files fail, not the run
            self._fail_batch(batch, exc)
            return
        if self.trim is not None and not self.on_cuda:
            self.trim()
        for chunk, out in zip(batch, outputs, strict=True):
            state = self._states.get(chunk.file_index)
            if state is None:  # failed by another batch meanwhile
                continue
            energy = self._prepared.pop((chunk.file_index, chunk.index), (None, None))[1]
            state.kept.append(chunking.keep(chunk, out, self.plan, energy))
            if self.on_audio is not None:
                kept = max(chunk.length - chunk.stride_left - chunk.stride_right, 0)
                self.on_audio(kept / self.sampling_rate)
                state.reported += kept / self.sampling_rate
            if state.complete:
                self._finish(chunk.file_index, state)

    def _finish(self, idx: int, state: _FileState) -> None:
        """A complete file: its chunks' kept frames stitched into its emissions."""
        del self._states[idx]
        assert state.num_samples is not None
        if self.on_audio is not None:  # the pauses --vad left out
            left = state.num_samples / self.sampling_rate - state.reported
            if left > 0:
                self.on_audio(left)
        self._done_files[idx] = chunking.join(
            state.kept, self.plan, state.num_samples, self.vocab_size, boundary=self.boundary
        )

    def _fail(self, idx: int, error: W2V2Error) -> None:
        """Give up on a file: it is read no further and its later chunks are dropped."""
        assert self._reader is not None
        self._states.pop(idx, None)
        self._reader.abandon(idx)
        for key in [k for k in self._prepared if k[0] == idx]:
            del self._prepared[key]
        if idx not in self._failed:
            self._failed.add(idx)
            self._done_files[idx] = error

    def _fail_batch(self, batch: list[Chunk], exc: Exception) -> None:
        log.debug("model failed on a batch", exc_info=True)
        reason = f"the model failed on this file: {type(exc).__name__}: {exc}"
        for chunk in batch:
            self._fail(chunk.file_index, W2V2Error(" ".join(reason.split())))

    def _no_speech(self, num_samples: int) -> Emissions:
        """The emissions of a file in which the VAD found no speech: no frames."""
        sr = self.sampling_rate
        return Emissions(
            np.zeros((0, self.vocab_size), np.float32),
            np.zeros(0),
            self.plan.samples_per_frame / sr,
            num_samples / sr,
            np.zeros(0, np.float32),
        )

    def _ready(self) -> Iterator[Result]:
        """Hand on the files that are done, in input order (a later one waits for the
        earlier ones)."""
        while self._next_out in self._done_files:
            yield self._next_out, self._done_files.pop(self._next_out)
            self._next_out += 1
