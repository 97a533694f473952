"""The windowed engine: audio loaders in, each file's stitched log-probabilities out, in order.

``Engine`` owns what is loaded once for a run (the model, the runner, the chunk plan) and
is the one way any command runs the model: ``transcribe``, ``align``, ``eval`` and ``lm
tune`` all get their ``Emissions`` from ``Engine.emissions``, and build it from their
``RunOptions`` with ``Engine.from_options``. A background thread decodes audio block by
block and cuts it into chunks as it arrives (``chunking.Splitter``), a bounded queue ahead
of the model (with ``readers``, processes decode several files at once for it:
``readers.py``), so memory does not grow with a file's length: a chunk's samples are dropped
once the model has run it, and a file is only its chunks' kept frames until it is complete.
Chunks are batched *across files* in windows sorted by length (less padding; at batch
size 1, one chunk at a time in input order), and each file's stitched log-probabilities
come back in input order as soon as they are complete (``windows.EmissionRun``).
It never decodes text.
"""

from __future__ import annotations

import ctypes
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from .. import chunking
from ..cores import available_cores
from ..errors import W2V2Error
from ..models import LoadedModel
from ..options import ChunkOptions, ModelOptions, RunOptions, VadOptions
from ..records import Emissions
from .backends import open_backend
from .quantize import calibration_chunks
from .readers import AudioReaders, FileLoader, default_readers
from .readers import start_early as start_readers_early
from .reading import AudioLoader
from .runner import Runner
from .vad import SileroVad
from .windows import EmissionRun

log = logging.getLogger("w2v2cli")

#: Give freed heap memory back to the system after every batch (glibc's ``malloc_trim``).
#: Without it, glibc keeps the pages of freed activations and the process's resident
#: memory creeps up over a long run (benchmarks/RESULTS.md, "heap growth").
RELEASE_MEMORY = True


def _malloc_trim() -> Callable[[], None] | None:
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, musl): nothing to do
        return None
    return lambda: trim(0) and None


class Engine:
    """One model, loaded on construction (``backends.open_backend``) and released by
    ``close``.

    ``batch_size`` and ``max_padding`` default by device (see ``Runner``); ``exact=False``
    turns exact batching off (benchmarks only); ``notify`` receives one-line notices such
    as a first OpenVINO conversion (default: the log). ``vad`` cuts chunks at pauses and
    sends only speech to the model (``inference/vad.py``, ``segmentation/``). ``readers``:
    processes that decode audio files for it (``readers.py``; None: ``default_readers``,
    0: the reading thread alone); ``close`` stops them.
    ``from_options`` builds one from a run's ``RunOptions``.
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
        readers: int | None = None,
    ) -> None:
        self.model_options = model or ModelOptions()
        cuda = self.model_options.device.startswith("cuda")
        if readers or (readers is None and default_readers(cuda) > 0):
            start_readers_early()  # while the model loads
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
            on_cpu = self.loaded.device == "cpu" or self.backend == "openvino"
            cores = 1 if on_cpu else available_cores()
            self.vad = SileroVad(vad, self.loaded.sampling_rate, threads=cores)
        vocab = self.loaded.vocabulary
        # What fills a gap left by --vad (chunking.stitch): a word boundary (the delimiter,
        # a space token, a bare ``▁`` piece), else a blank.
        boundaries = [
            i for i in range(vocab.size) if i != vocab.blank_id and vocab.is_word_boundary(i)
        ]
        self._boundary = (
            vocab.delimiter_id
            if vocab.delimiter_id is not None
            else (boundaries[0] if boundaries else vocab.blank_id)
        )
        if readers is None:
            readers = default_readers(self.runner.backend.on_cuda)
            log.debug(
                "audio reading processes: %d (%d usable cores, model on %s; "
                "--read-workers sets it)",
                readers,
                available_cores(),
                "CUDA" if self.runner.backend.on_cuda else "CPU",
            )
        self.readers = AudioReaders(readers) if readers else None
        if self.runner.needs_calibration and self.model_options.calibration:
            files = self.model_options.calibration
            self.runner.calibrate(calibration_chunks(files, self.plan, self.sampling_rate))

    @classmethod
    def from_options(
        cls,
        options: RunOptions,
        *,
        exact: bool = True,
        notify: Callable[[str], None] | None = None,
    ) -> Engine:
        """The engine a run's options ask for: its model, chunking, batch size, padding
        limit and VAD (the one place every command builds its engine)."""
        return cls(
            options.model,
            options.chunking,
            batch_size=options.batch_size,
            max_padding=options.max_padding,
            exact=exact,
            notify=notify,
            vad=options.vad,
            readers=options.read_workers,
        )

    @property
    def sampling_rate(self) -> int:
        return self.loaded.sampling_rate

    @property
    def backend(self) -> str:
        """``torch`` or ``openvino``."""
        return self.runner.backend.name

    def close(self) -> None:
        """Drop the model (its memory goes with the last reference) and stop the audio
        reading processes."""
        if self.readers is not None:
            self.readers.close()
        if self.runner is not None:
            self.runner.close()
        self.runner = None  # type: ignore[assignment]
        self.loaded = None  # type: ignore[assignment]

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
        of audio each processed chunk completes (for progress). The steps are
        ``windows.EmissionRun``'s.
        """
        if self.runner is None:
            raise W2V2Error("this engine is closed")
        yield from EmissionRun(
            self.runner,
            self.plan,
            loaders,
            boundary=self._boundary,
            vad=self.vad,
            on_audio=on_audio,
            trim=_malloc_trim() if RELEASE_MEMORY else None,
            readers=self.readers,
        )


def file_loader(path: str | Path, sampling_rate: int) -> AudioLoader:
    """A loader for one audio file, decoded block by block in the engine's reading thread
    or in its reading processes (``readers.py``)."""
    return FileLoader(Path(path), sampling_rate)
