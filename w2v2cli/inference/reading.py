"""The reading thread: audio loaders in, each file's chunks (with their model input and
frame loudness, computed here ahead of the model) out, in input order, through a bounded
queue (``Reader``); ``windows.EmissionRun`` takes them from there.

A file is decoded block by block (in this thread, or in the reader processes of
``readers.py``) and cut into chunks as it arrives (``chunking.Splitter``), so a file's
length does not raise memory. With ``--vad`` a file is read whole and only its speech is cut
into chunks.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial

import numpy as np

from .. import chunking
from ..errors import W2V2Error
from ..records import Chunk
from ..segmentation import speech_chunks
from .readers import AudioReaders, FileLoader, reading_error
from .vad import SileroVad

#: Something that returns one file's mono float32 samples at the model's rate, as one
#: 1-D array or as an iterator of consecutive 1-D blocks (``audio.stream_audio``), or
#: raises.
AudioLoader = Callable[[], "np.ndarray | Iterator[np.ndarray]"]

#: What the reading thread computes for a chunk ahead of the model, off the model's
#: thread: its model input (``Runner.features``; None where it was not computed) and the
#: loudness of its frames (``chunking.chunk_energy``).
Prepared = tuple["tuple[np.ndarray, int] | None", "tuple[int, np.ndarray] | None"]


class Reader:
    """The reading thread: each loader's chunks, then its end (or its error), in input
    order, through a bounded queue. ``close`` stops it at the next chunk. With ``vad``,
    a file is read whole and only its speech is cut into chunks. With ``readers``, files
    are decoded in those processes, a few files ahead (``readers.AudioReaders``), and
    this thread cuts their blocks into chunks."""

    def __init__(
        self,
        loaders: Iterable[AudioLoader],
        plan: chunking.ChunkPlan,
        vad: SileroVad | None,
        size: int,
        readers: AudioReaders | None = None,
        prepare: Callable[[Chunk], Prepared] | None = None,
    ) -> None:
        self.plan, self.vad, self.readers = plan, vad, readers
        self.prepare = prepare
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
        fatal: BaseException | None = None
        try:
            for idx, source in self._sources(loaders):
                error: W2V2Error | None = None
                try:
                    ok = self._file(idx, source)
                except Exception as exc:  # noqa: BLE001 - a decoder library failing in a new way
                    error = reading_error(exc)
                if error is not None:
                    ok = self._put(("error", idx, error))
                if not ok:
                    return
        except BaseException as exc:  # noqa: BLE001 - the loaders' iterable itself failed
            fatal = exc
        self._put(("fatal", -1, fatal) if fatal is not None else ("done", -1))

    def _sources(self, loaders: Iterable[AudioLoader]) -> Iterator[tuple[int, Callable]]:
        """Each file's index and what gives its samples: its loader, or (with readers) its
        blocks from the reader it was given to, ``2 * readers`` files ahead. When the
        loaders' iterable raises, the files given out before are read first."""
        if self.readers is None:
            yield from enumerate(loaders)
            return
        readers, ahead = self.readers, 2 * self.readers.count
        given: deque[tuple[int, Callable]] = deque()
        fatal: BaseException | None = None
        it = enumerate(loaders)
        while True:
            while fatal is None and len(given) < ahead:
                try:
                    idx, loader = next(it)
                except StopIteration:
                    break
                except BaseException as exc:  # noqa: BLE001 - raised once the others are read
                    fatal = exc
                    break
                if isinstance(loader, FileLoader):
                    reader, ticket = readers.dispatch(loader)
                    given.append((idx, partial(readers.blocks, reader, ticket, loader, self._stop)))
                else:
                    given.append((idx, loader))
            if not given:
                break
            yield given.popleft()
        if fatal is not None:
            raise fatal

    def _file(self, idx: int, loader: AudioLoader) -> bool:
        """Queue one file's chunks and its end; False once the reader is stopped. A file
        the engine has given up on (``abandon``) is not read any further."""
        blocks, whole = _blocks(loader())
        if self.vad is not None:  # the VAD reads the whole file
            samples = _concatenate(blocks)
            spans = self.vad.speech_spans(samples)
            num_samples, chunks = len(samples), speech_chunks(idx, samples, spans, self.plan)
            for chunk in chunks:
                if not self._chunk(idx, chunk):
                    return False
            return self._put(("end", idx, num_samples, len(chunks)))
        splitter = chunking.Splitter(idx, self.plan, copy=not whole)
        for block in blocks:
            if idx in self._abandoned:
                return True
            for chunk in splitter.feed(block):
                if not self._chunk(idx, chunk):
                    return False
        for chunk in splitter.finish():
            if not self._chunk(idx, chunk):
                return False
        return self._put(("end", idx, splitter.num_samples, splitter.count))

    def _chunk(self, idx: int, chunk: Chunk) -> bool:
        """Queue one chunk, with what ``prepare`` computed for it ahead."""
        prepared = self.prepare(chunk) if self.prepare is not None else (None, None)
        return self._put(("chunk", idx, chunk, prepared))

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
