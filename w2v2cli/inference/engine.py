"""The windowed engine: audio loaders in, each file's stitched log-probabilities out, in order.

``Engine`` owns what is loaded once for a run (the model, the runner, the chunk plan) and
is the one way any command runs the model: ``transcribe``, ``eval`` and ``lm tune`` all get
their ``Emissions`` from ``Engine.emissions``. It decodes audio a file or two ahead in a
background thread, cuts files into chunks, batches chunks *across files* in windows sorted
by length (less padding), and hands back each file's stitched log-probabilities in input
order as soon as they are complete. It never decodes text.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import chunking
from ..errors import W2V2Error
from ..models import LoadedModel
from ..options import ChunkOptions, ModelOptions, VadOptions
from ..records import Chunk, Emissions
from .backends import open_backend
from .runner import Runner

log = logging.getLogger("w2v2cli")

#: Something that returns one file's mono float32 samples at the model's rate, or raises.
AudioLoader = Callable[[], np.ndarray]

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
    chunks: list[Chunk]
    outputs: list[np.ndarray | None]
    num_samples: int
    remaining: int
    reported: float = 0.0  # seconds of progress reported so far


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
        self._boundary = vocab.delimiter_id if vocab.delimiter_id is not None else (
            spaces[0] if spaces else vocab.blank_id)
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

    def _read(self, index: int, loader: AudioLoader) -> tuple[int, list[Chunk]]:
        """In the reading thread: one file's samples cut into chunks (fixed ones, or with
        ``vad`` only its speech, cut at pauses). Returns the file's length in samples."""
        samples = loader()
        if self.vad is None:
            return len(samples), chunking.split(index, samples, self.plan)
        from ..segmentation import speech_chunks

        spans = self.vad.speech_spans(samples)
        return len(samples), speech_chunks(index, samples, spans, self.plan)

    def _no_speech(self, num_samples: int) -> Emissions:
        """The emissions of a file in which the VAD found no speech: no frames."""
        sr = self.loaded.sampling_rate
        return Emissions(
            np.zeros((0, self.loaded.vocabulary.size), np.float32), np.zeros(0),
            self.plan.samples_per_frame / sr, num_samples / sr, np.zeros(0, np.float32),
        )

    def emissions(
        self,
        loaders: Iterable[AudioLoader],
        on_audio: Callable[[float], None] | None = None,
    ) -> Iterator[tuple[int, Emissions | W2V2Error]]:
        """Yield ``(index, Emissions)`` per loader, in order; a failed load yields the error.

        Chunks of several files share batches. A window of at least ``8 * batch_size``
        chunks is gathered and split into batches by ``chunking.plan_batches`` (longest
        first, padding limited by the runner's device policy), so model activations exist
        only for the batch in flight. ``on_audio`` is called with the seconds of audio each
        processed chunk completes (for progress).
        """
        if self.runner is None:
            raise W2V2Error("this engine is closed")
        batch_size = self.runner.batch_size
        window = max(8 * batch_size, 32)
        trim = _malloc_trim() if RELEASE_MEMORY else None
        sr = self.loaded.sampling_rate
        states: dict[int, _FileState] = {}
        ready: dict[int, Emissions | W2V2Error] = {}
        next_out = 0
        source = iter(enumerate(loaders))
        inflight: deque[tuple[int, Future[tuple[int, list[Chunk]]]]] = deque()
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
                    inflight.append((idx, pool.submit(self._read, idx, loader)))

            try:
                while True:
                    pending: list[Chunk] = []
                    top_up()
                    while inflight and len(pending) < window:
                        idx, fut = inflight.popleft()
                        top_up()
                        try:
                            num_samples, chunks = fut.result()
                        except W2V2Error as exc:
                            ready[idx] = exc
                            continue
                        except MemoryError:
                            ready[idx] = W2V2Error("not enough memory to decode this file")
                            continue
                        except Exception as exc:  # a decoder library failing in a new way
                            ready[idx] = W2V2Error(f"{type(exc).__name__}: {exc}")
                            continue
                        if not chunks and num_samples and self.vad is not None:
                            ready[idx] = self._no_speech(num_samples)  # nothing to say
                            if on_audio is not None:
                                on_audio(num_samples / sr)
                            continue
                        if not chunks:
                            ready[idx] = W2V2Error("no audio samples")
                            continue
                        states[idx] = _FileState(
                            chunks, [None] * len(chunks), num_samples, len(chunks)
                        )
                        pending.extend(chunks)
                    while next_out in ready:
                        yield next_out, ready.pop(next_out)
                        next_out += 1
                    if not pending:
                        if exhausted and not inflight:
                            break
                        continue
                    if self.runner.needs_calibration:  # int8 calibrated on the input
                        from .quantize import CALIBRATION_CHUNKS

                        self.runner.calibrate(pending[:CALIBRATION_CHUNKS])
                    plan = chunking.plan_batches(
                        [c.length for c in pending], batch_size, self.runner.max_padding
                    )
                    for indices in plan:
                        batch = [pending[i] for i in indices if pending[i].file_index in states]
                        if not batch:
                            continue
                        try:
                            outputs = self.runner.run(batch)
                        except Exception as exc:  # noqa: BLE001 - these files fail, not the run
                            log.debug("model failed on a batch", exc_info=True)
                            reason = f"the model failed on this file: {type(exc).__name__}: {exc}"
                            for chunk in batch:
                                if states.pop(chunk.file_index, None) is not None:
                                    ready[chunk.file_index] = W2V2Error(" ".join(reason.split()))
                            continue
                        if trim is not None:
                            trim()
                        for chunk, out in zip(batch, outputs, strict=True):
                            state = states[chunk.file_index]
                            state.outputs[chunk.index] = out
                            state.remaining -= 1
                            if on_audio is not None:
                                kept = chunk.length - chunk.stride_left - chunk.stride_right
                                on_audio(max(kept, 0) / sr)
                                state.reported += max(kept, 0) / sr
                            if state.remaining == 0:
                                del states[chunk.file_index]
                                if on_audio is not None:  # the pauses --vad left out
                                    left = state.num_samples / sr - state.reported
                                    if left > 0:
                                        on_audio(left)
                                ready[chunk.file_index] = chunking.stitch(
                                    state.chunks,
                                    [o for o in state.outputs if o is not None],
                                    self.plan,
                                    state.num_samples,
                                    boundary=self._boundary,
                                )
                        while next_out in ready:
                            yield next_out, ready.pop(next_out)
                            next_out += 1
                while next_out in ready:
                    yield next_out, ready.pop(next_out)
                    next_out += 1
            finally:
                # On an early exit (Ctrl-C, a consumer that stops) the loads queued in the
                # thread are dropped rather than waited for.
                for _, fut in inflight:
                    fut.cancel()


def file_loader(path: str | Path, sampling_rate: int) -> AudioLoader:
    """A loader for one audio file (decoded in the engine's reading thread)."""
    from ..audio import load_audio

    return lambda: load_audio(path, sampling_rate)

