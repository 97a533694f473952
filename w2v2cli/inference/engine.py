"""The windowed engine: audio loaders in, each file's stitched log-probabilities out, in order.

``Engine`` owns what is loaded once for a run (the model, the runner, the chunk plan) and
is the one way any command runs the model: ``transcribe``, ``eval`` and ``lm tune`` all get
their ``Emissions`` from ``Engine.emissions``. A background thread decodes audio block by
block and cuts it into chunks as it arrives (``chunking.Splitter``), a bounded queue ahead
of the model, so memory does not grow with a file's length: a chunk's samples are dropped
once the model has run it, and a file is only its chunks' kept frames until it is complete.
Chunks are batched *across files* in windows sorted by length (less padding; at batch
size 1, one chunk at a time in input order), and each file's stitched log-probabilities
come back in input order as soon as they are complete.
It never decodes text.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import chunking
from ..errors import W2V2Error
from ..models import LoadedModel
from ..options import ChunkOptions, ModelOptions, VadOptions
from ..records import Chunk, Emissions
from .backends import open_backend
from .runner import Runner, Started

log = logging.getLogger("w2v2cli")

#: Something that returns one file's mono float32 samples at the model's rate, as one
#: 1-D array or as an iterator of consecutive 1-D blocks (``audio.stream_audio``), or
#: raises.
AudioLoader = Callable[[], "np.ndarray | Iterator[np.ndarray]"]

#: Give freed heap memory back to the system after every batch (glibc's ``malloc_trim``).
#: Without it, glibc keeps the pages of freed activations and the process's resident
#: memory creeps up over a long run (benchmarks/RESULTS.md, "heap growth").
RELEASE_MEMORY = True


def _malloc_trim() -> Callable[[], None] | None:
    try:
        import ctypes

        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None
    return lambda: trim(0) and None


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


class _Reader:
    """The reading thread: each loader's chunks, then its end (or its error), in input
    order, through a bounded queue. ``close`` stops it at the next chunk."""

    def __init__(self, engine: Engine, loaders: Iterable[AudioLoader], size: int) -> None:
        self.engine = engine
        self.queue: queue.Queue[tuple] = queue.Queue(maxsize=size)
        self._stop = threading.Event()
        self._abandoned: set[int] = set()  # set by the engine's thread, read by the reader's
        self._thread = threading.Thread(
            target=self._run, args=(loaders,), name="w2v2-audio", daemon=True
        )
        self._thread.start()

    def _put(self, item: tuple) -> bool:
        while not self._stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, loaders: Iterable[AudioLoader]) -> None:
        try:
            for idx, loader in enumerate(loaders):
                error: W2V2Error | None = None
                try:
                    ok = self._file(idx, loader)
                except W2V2Error as exc:
                    error = exc
                except MemoryError:
                    error = W2V2Error("not enough memory to decode this file")
                except Exception as exc:  # noqa: BLE001 - a decoder library failing in a new way
                    error = W2V2Error(f"{type(exc).__name__}: {exc}")
                if error is not None:
                    ok = self._put(("error", idx, error))
                if not ok:
                    return
        except BaseException as exc:  # noqa: BLE001 - the loaders' iterable itself failed
            self._put(("fatal", -1, exc))
            return
        self._put(("done", -1))

    def _file(self, idx: int, loader: AudioLoader) -> bool:
        """Queue one file's chunks and its end; False once the reader is stopped. A file
        the engine has given up on (``abandon``) is not read any further."""
        blocks, whole = _blocks(loader())
        if self.engine.vad is not None:  # the VAD reads the whole file
            samples = _concatenate(blocks)
            num_samples, chunks = len(samples), self.engine._speech_chunks(idx, samples)
            for chunk in chunks:
                if not self._put(("chunk", idx, chunk)):
                    return False
            return self._put(("end", idx, num_samples, len(chunks)))
        splitter = chunking.Splitter(idx, self.engine.plan, copy=not whole)
        for block in blocks:
            if idx in self._abandoned:
                return True
            for chunk in splitter.feed(block):
                if not self._put(("chunk", idx, chunk)):
                    return False
        for chunk in splitter.finish():
            if not self._put(("chunk", idx, chunk)):
                return False
        return self._put(("end", idx, splitter.num_samples, splitter.count))

    def abandon(self, idx: int) -> None:
        """Stop reading file ``idx`` (it has failed): its later chunks would be dropped."""
        self._abandoned.add(idx)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _blocks(got: np.ndarray | Iterator[np.ndarray]) -> tuple[Iterable[np.ndarray], bool]:
    """A loader's result as 1-D float32 blocks, and whether it was one whole array: an
    iterator (``audio.stream_audio``, a generator) is a stream of blocks; anything else is
    one array of samples (numpy, a list, a CPU tensor)."""
    if isinstance(got, Iterator):
        return (_mono(block) for block in got), False
    return [_mono(got)], True


def _mono(block: object) -> np.ndarray:
    samples = np.asarray(block, dtype=np.float32)
    if samples.ndim != 1:
        raise W2V2Error(
            f"audio must be mono samples (a 1-D array), not an array of shape {samples.shape}"
        )
    return samples


def _concatenate(blocks: Iterable[np.ndarray]) -> np.ndarray:
    parts = list(blocks)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


class Engine:
    """One model, loaded on construction (``backends.open_backend``) and released by
    ``close``.

    ``batch_size`` and ``max_padding`` default by device (see ``Runner``); ``exact=False``
    turns exact batching off (benchmarks only); ``notify`` receives one-line notices such
    as a first OpenVINO conversion (default: the log). ``vad`` cuts chunks at pauses and
    sends only speech to the model (``vad.py``, ``segmentation/``).
    """

    def __init__(
        self,
        model: ModelOptions | None = None,
        chunking_options: ChunkOptions | None = None,
        *,
        batch_size: int | None = None,
        max_padding: float | None = None,
        exact: bool = True,
        notify: Callable[[str], None] | None = None,
        vad: VadOptions | None = None,
    ) -> None:
        self.model_options = model or ModelOptions()
        self.loaded: LoadedModel
        self.loaded, backend = open_backend(self.model_options, exact=exact, notify=notify)
        self.runner = Runner(self.loaded, backend, max_padding=max_padding, batch_size=batch_size)
        self.plan = chunking.plan(
            chunking_options or ChunkOptions(),
            self.loaded.sampling_rate,
            self.loaded.samples_per_frame,
            self.runner.min_samples,
        )
        self.vad = None
        if vad is not None:
            from ..vad import SileroVad
            from .threads import available_cores

            on_cpu = self.loaded.device == "cpu" or self.backend == "openvino"
            cores = 1 if on_cpu else available_cores()
            self.vad = SileroVad(vad, self.loaded.sampling_rate, threads=cores)
        vocab = self.loaded.vocabulary
        spaces = [i for i, t in enumerate(vocab.tokens) if t == " "]
        # What fills a gap left by --vad (chunking.stitch): a word boundary, else a blank.
        self._boundary = (
            vocab.delimiter_id
            if vocab.delimiter_id is not None
            else (spaces[0] if spaces else vocab.blank_id)
        )
        if self.runner.needs_calibration and self.model_options.calibration:
            from .quantize import calibration_chunks

            files = self.model_options.calibration
            self.runner.calibrate(calibration_chunks(files, self.plan, self.sampling_rate))

    @property
    def sampling_rate(self) -> int:
        return self.loaded.sampling_rate

    @property
    def backend(self) -> str:
        """``torch`` or ``openvino``."""
        return self.runner.backend.name

    def close(self) -> None:
        """Drop the model (its memory goes with the last reference)."""
        if self.runner is not None:
            self.runner.close()
        self.runner = None  # type: ignore[assignment]
        self.loaded = None  # type: ignore[assignment]

    def _speech_chunks(self, index: int, samples: np.ndarray) -> list[Chunk]:
        """In the reading thread, with ``vad``: only a file's speech, cut at pauses."""
        from ..segmentation import speech_chunks

        assert self.vad is not None
        return speech_chunks(index, samples, self.vad.speech_spans(samples), self.plan)

    def _no_speech(self, num_samples: int) -> Emissions:
        """The emissions of a file in which the VAD found no speech: no frames."""
        sr = self.loaded.sampling_rate
        return Emissions(
            np.zeros((0, self.loaded.vocabulary.size), np.float32),
            np.zeros(0),
            self.plan.samples_per_frame / sr,
            num_samples / sr,
            np.zeros(0, np.float32),
        )

    def emissions(
        self,
        loaders: Iterable[AudioLoader],
        on_audio: Callable[[float], None] | None = None,
    ) -> Iterator[tuple[int, Emissions | W2V2Error]]:
        """Yield ``(index, Emissions)`` per loader, in order; a failed load yields the error.

        Chunks of several files share batches. A window of ``8 * batch_size`` chunks (at
        least 32) is gathered and split into batches by ``chunking.plan_batches`` (longest
        first, padding limited by the runner's device policy), so model activations exist
        only for the batch in flight, and samples only for the window and the reading
        queue. At batch size 1 (the CPU default) there is no padding to save: the window
        is one chunk, so chunks run in input order and each file comes out as soon as its
        own chunks have run (a stream's first result does not wait for a window of later
        files), with no window of samples held. ``on_audio`` is called with the seconds
        of audio each processed chunk completes (for progress).
        """
        if self.runner is None:
            raise W2V2Error("this engine is closed")
        batch_size = self.runner.batch_size
        window = 1 if batch_size == 1 else max(8 * batch_size, 32)
        calibration = 0  # int8 calibrated on the input: the chunks its first window holds
        if self.runner.needs_calibration:
            from .quantize import CALIBRATION_CHUNKS

            calibration = CALIBRATION_CHUNKS
        trim = _malloc_trim() if RELEASE_MEMORY else None
        sr = self.loaded.sampling_rate
        vocab = self.loaded.vocabulary.size
        states: dict[int, _FileState] = {}
        failed: set[int] = set()  # files given up on: their later chunks are dropped
        ready: dict[int, Emissions | W2V2Error] = {}
        next_out = 0
        reader = _Reader(self, loaders, size=max(2 * batch_size, 8))
        on_cuda = self.runner.backend.on_cuda

        def finish(idx: int, state: _FileState) -> None:
            del states[idx]
            assert state.num_samples is not None
            if on_audio is not None:  # the pauses --vad left out
                left = state.num_samples / sr - state.reported
                if left > 0:
                    on_audio(left)
            ready[idx] = chunking.join(
                state.kept, self.plan, state.num_samples, vocab, boundary=self._boundary
            )

        def fail(idx: int, error: W2V2Error) -> None:
            states.pop(idx, None)
            reader.abandon(idx)
            if idx not in failed:
                failed.add(idx)
                ready[idx] = error

        def take(item: tuple) -> Chunk | None:
            """One event of the reader; a chunk to run, if it is one."""
            kind, idx = item[0], item[1]
            if idx in failed:
                return None
            if kind == "error":
                fail(idx, item[2])
                return None
            state = states.setdefault(idx, _FileState())
            if kind == "chunk":
                return item[2]
            state.num_samples, state.count = item[2], item[3]  # "end"
            if state.count == 0:
                del states[idx]
                if state.num_samples and self.vad is not None:
                    ready[idx] = self._no_speech(state.num_samples)  # nothing to say
                    if on_audio is not None:
                        on_audio(state.num_samples / sr)
                else:
                    fail(idx, W2V2Error("no audio samples"))
            elif state.complete:
                finish(idx, state)
            return None

        def fail_batch(batch: list[Chunk], exc: Exception) -> None:
            log.debug("model failed on a batch", exc_info=True)
            reason = f"the model failed on this file: {type(exc).__name__}: {exc}"
            for chunk in batch:
                fail(chunk.file_index, W2V2Error(" ".join(reason.split())))

        def collect(batch: list[Chunk], result: Started) -> None:
            """A started batch's log-probabilities into its files (a failure fails them)."""
            try:
                outputs = result()
            except Exception as exc:  # noqa: BLE001 - these files fail, not the run
                fail_batch(batch, exc)
                return
            if trim is not None and not on_cuda:
                trim()
            for chunk, out in zip(batch, outputs, strict=True):
                state = states.get(chunk.file_index)
                if state is None:  # failed by another batch meanwhile
                    continue
                state.kept.append(chunking.keep(chunk, out, self.plan))
                if on_audio is not None:
                    kept = max(chunk.length - chunk.stride_left - chunk.stride_right, 0)
                    on_audio(kept / sr)
                    state.reported += kept / sr
                if state.complete:
                    finish(chunk.file_index, state)

        # On CUDA one batch is in flight while the next is prepared and started, and the
        # last one's files are finished and handed on (``Runner.submit``). It is collected
        # before the engine would wait for audio, so no result waits on the reader; a
        # batch already computed (CPU) is collected at once.
        in_flight: tuple[list[Chunk], Started] | None = None
        fatal: BaseException | None = None
        try:
            done = False
            while True:
                pending: list[Chunk] = []
                limit = max(window, calibration) if self.runner.needs_calibration else window
                while not done and len(pending) < limit:
                    if in_flight is not None and reader.queue.empty():
                        collect(*in_flight)
                        in_flight = None
                        while next_out in ready:
                            yield next_out, ready.pop(next_out)
                            next_out += 1
                    item = reader.queue.get()
                    if item[0] == "done":
                        done = True
                    elif item[0] == "fatal":  # the loaders themselves failed: the files
                        done, fatal = True, item[2]  # read so far are finished first
                    elif (chunk := take(item)) is not None:
                        pending.append(chunk)
                while next_out in ready:
                    yield next_out, ready.pop(next_out)
                    next_out += 1
                if not pending:
                    if in_flight is not None:
                        collect(*in_flight)
                        in_flight = None
                        continue
                    if done:
                        break
                    continue
                if self.runner.needs_calibration:
                    self.runner.calibrate(pending[:calibration])
                plan = chunking.plan_batches(
                    [c.length for c in pending], batch_size, self.runner.max_padding
                )
                batches = [[pending[i] for i in indices] for indices in reversed(plan)]
                del pending  # a chunk's samples go with its batch
                while batches:
                    batch = [c for c in batches.pop() if c.file_index in states]
                    if not batch:
                        continue
                    try:
                        started = self.runner.submit(batch)
                    except Exception as exc:  # noqa: BLE001 - these files fail, not the run
                        if in_flight is not None:
                            collect(*in_flight)
                            in_flight = None
                        fail_batch(batch, exc)
                    else:
                        if in_flight is not None:
                            collect(*in_flight)
                            in_flight = None
                        if started.done:
                            collect(batch, started)
                        else:
                            in_flight = (batch, started)
                        del started
                    del batch
                    while next_out in ready:
                        yield next_out, ready.pop(next_out)
                        next_out += 1
                if trim is not None and on_cuda:  # the host heap holds no activations
                    trim()
            while next_out in ready:
                yield next_out, ready.pop(next_out)
                next_out += 1
            if fatal is not None:
                raise fatal
        finally:
            # On an early exit (Ctrl-C, a consumer that stops) the reader stops at its next
            # chunk rather than reading on.
            reader.close()


def file_loader(path: str | Path, sampling_rate: int) -> AudioLoader:
    """A loader for one audio file, decoded block by block in the engine's reading thread."""
    from ..audio import stream_audio

    return lambda: stream_audio(path, sampling_rate)
