"""``AudioReaders``: processes that decode audio files ahead of the model, several at once.

The engine's reading thread (``reading.Reader``) decodes each file, resamples it and cuts
it into chunks. One thread decodes MP3 at about 1,200x real time per core, and its Python
share holds the GIL the model's thread needs: on a GPU, which runs a base model at
thousands of times real time, one reading thread is the limit. With readers, the files
(``FileLoader``) are decoded in processes instead, several at once, and the reading thread
only cuts the blocks they send into chunks:

- **Order and memory.** File ``k`` goes to reader ``k mod n``; a reader decodes its files
  in turn and sends each one's target-rate blocks (``audio.stream_audio``) through its own
  queue of ``QUEUE_BLOCKS`` blocks, so it works at most that far ahead and memory stays
  flat whatever the files' lengths. The reading thread takes each file's blocks in input
  order, so the chunks, and the text, are those of one thread.
- **Failures.** A file that cannot be read fails alone, with the reason the thread would
  give. A reader that dies (killed for memory) fails the file it was decoding, and the
  files given to it after are read in the thread.
- **Signals.** Readers write nothing: they ignore Ctrl-C (the run stops them), SIGTERM
  stops them at once, and they exit when the run's process is gone.

``default_readers`` says how many a run starts (``--read-workers`` overrides it).
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing as mp
import os
import pickle
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..audio import stream_audio
from ..cores import available_cores
from ..decoding.pool import start_method, start_server, watch_parent
from ..errors import W2V2Error

log = logging.getLogger("w2v2cli")

#: Blocks a reader decodes ahead of the thread: the slots of its shared ring.
QUEUE_BLOCKS = 8
#: Samples per slot (16 s at 16 kHz, 1 MiB); a longer block is sent in pieces.
SLOT_SAMPLES = 1 << 18
#: Most readers a run starts by default.
MAX_DEFAULT_READERS = 6
#: Seconds between looks at whether a reader that sends nothing is still alive.
_POLL = 0.2
#: What the process readers are forked from imports once, so that each reader starts at
#: once instead of importing its decoders (a short run would wait for that).
PRELOAD = (__name__, "soundfile", "av", "av.error")


def start_early() -> None:
    """Start the process readers are forked from (with ``PRELOAD``) now, while the model
    loads; nothing where it already runs."""
    start_server(PRELOAD)


def default_readers(on_cuda: bool, cores: int | None = None) -> int:
    """Reader processes a run starts when ``--read-workers`` is not given: a third of the
    cores this process may use, at most ``MAX_DEFAULT_READERS``, from four cores on or on
    CUDA (at least one there); none below four cores on the CPU, where the model takes
    every core and reading in its thread costs nothing extra."""
    cores = available_cores() if cores is None else cores
    share = min(cores // 3, MAX_DEFAULT_READERS)
    if on_cuda:
        return max(share, 1)
    return share if cores >= 4 else 0


@dataclass(frozen=True)
class FileLoader:
    """An ``AudioLoader`` for one file (``audio.stream_audio``); unlike a closure it can be
    sent to a reader process."""

    path: Path
    sampling_rate: int

    def __call__(self) -> Iterator[np.ndarray]:
        return stream_audio(self.path, self.sampling_rate)


def reading_error(exc: BaseException) -> W2V2Error:
    """What a file that could not be read failed with, as the run reports it."""
    if isinstance(exc, W2V2Error):
        return exc
    if isinstance(exc, MemoryError):
        return W2V2Error("not enough memory to decode this file")
    return W2V2Error(f"{type(exc).__name__}: {exc}")


def _portable(error: W2V2Error) -> W2V2Error:
    """``error`` as it can cross to the run's process (a plain one if it does not pickle)."""
    try:
        pickle.dumps(error)
    except Exception:  # noqa: BLE001 - an exception class with its own constructor
        return W2V2Error(str(error))
    return error


class _Forward(logging.Handler):
    """A reader's log records (a damaged file's warning) sent to the run, which logs them
    as its own: the run's ``-v``/``-q`` and format apply."""

    def __init__(self, messages: Any) -> None:
        super().__init__()
        self.messages = messages

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.send(("log", -1, record.levelno, record.getMessage()))


def _serve(tasks: Any, messages: Any, ring: Any, free: Any, parent: int, level: int) -> None:
    """A reader process: decode each file it is given, block by block, into the slots of
    ``ring``; each filled slot is announced on ``messages`` and given back by the run
    through ``free`` once it has copied the samples out."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the group: the run stops us
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # nothing is written here: stop at once
    threading.Thread(target=watch_parent, args=(parent,), daemon=True).start()
    log.handlers[:] = [_Forward(messages)]
    log.setLevel(level)
    log.propagate = False
    slots = np.frombuffer(ring, dtype=np.float32).reshape(QUEUE_BLOCKS, SLOT_SAMPLES)
    slot = 0
    while (task := tasks.recv()) is not None:
        ticket, loader = task
        try:
            for block in loader():
                for start in range(0, block.size, SLOT_SAMPLES):
                    piece = block[start : start + SLOT_SAMPLES]
                    free.acquire()
                    slots[slot, : piece.size] = piece
                    messages.send(("block", ticket, slot, piece.size))
                    slot = (slot + 1) % QUEUE_BLOCKS
            messages.send(("end", ticket))
        except Exception as exc:  # noqa: BLE001 - the file fails, with its reason
            messages.send(("error", ticket, _portable(reading_error(exc))))


class _Process:
    """One reader: its process, the pipes to and from it, and its ring of sample slots
    (shared memory: samples never go through a pipe, only which slot holds them)."""

    def __init__(self, context: Any) -> None:
        self.ring = context.RawArray("f", QUEUE_BLOCKS * SLOT_SAMPLES)
        self.slots = np.frombuffer(self.ring, dtype=np.float32).reshape(QUEUE_BLOCKS, SLOT_SAMPLES)
        self.free = context.Semaphore(QUEUE_BLOCKS)
        task_out, self.tasks = context.Pipe(duplex=False)
        self.messages, message_in = context.Pipe(duplex=False)
        self.process = context.Process(
            target=_serve,
            args=(task_out, message_in, self.ring, self.free, os.getpid(), log.getEffectiveLevel()),
            daemon=True,
        )
        self.process.start()
        task_out.close()  # the reader's ends: its death then ends ``messages`` here
        message_in.close()
        self.dead = False

    def receive(self) -> tuple | None:
        """The reader's next message; None while it has none; EOFError once it is dead."""
        if self.messages.poll(_POLL):
            return self.messages.recv()
        if not self.process.is_alive():
            raise EOFError
        return None

    def take(self, slot: int, size: int) -> np.ndarray:
        """A copy of the samples in ``slot``, which goes back to the reader."""
        samples = self.slots[slot, :size].copy()
        self.free.release()
        return samples

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join()
        self.tasks.close()
        self.messages.close()


class AudioReaders:
    """``count`` reader processes, started when the first file is given to them and kept
    for the next runs (module docstring). One run uses them at a time (``claim``)."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError("audio readers need at least one process")
        self.count = count
        self._procs: list[_Process] = []
        self._tickets = itertools.count()
        self._next = 0  # the reader the next file goes to
        self._claimed = False
        self._open: dict[int, int] = {}  # ticket → reader, for files not read to the end
        self._failed = False  # the readers could not be started: the thread reads

    def claim(self) -> bool:
        """Take the readers for one run; False when another run has them."""
        if self._claimed:
            return False
        self._claimed = True
        return True

    def release(self) -> None:
        """The run is over. Readers that still hold a file of it (a run stopped early),
        or of which one died, are stopped; the next run starts fresh ones."""
        if self._open or any(p.dead for p in self._procs):
            self.close()
        self._claimed = False

    def dispatch(self, loader: FileLoader) -> tuple[int, int]:
        """Give ``loader``'s file to the next reader; its (reader, ticket) for ``blocks``."""
        reader = self._next
        self._next = (self._next + 1) % self.count
        ticket = next(self._tickets)
        if not self._start():
            return reader, ticket  # read in the thread
        proc = self._procs[reader]
        if not proc.dead:
            try:
                proc.tasks.send((ticket, loader))
            except OSError:  # it died since (its pipe is broken): read in the thread
                proc.dead = True
                self._forget(reader)
            else:
                self._open[ticket] = reader
        return reader, ticket

    def _start(self) -> bool:
        """Start the readers if they are not running; False where they cannot be (the
        system refuses processes or shared memory): files are then read in the thread."""
        if self._procs:
            return True
        if self._failed:
            return False
        try:
            start_early()
            context = mp.get_context(start_method())
            for _ in range(self.count):
                self._procs.append(_Process(context))
        except (OSError, ValueError) as exc:
            log.warning("cannot start audio reading processes (%s): reading in one thread", exc)
            self.close()
            self._failed = True
            return False
        return True

    def blocks(
        self, reader: int, ticket: int, loader: FileLoader, stop: threading.Event
    ) -> Iterator[np.ndarray]:
        """The file's blocks as its reader sends them (read here if that reader had died
        or none could start); its reason, raised, if it could not be read. Ends early once
        ``stop`` is set."""
        if ticket not in self._open:
            yield from loader()
            return
        proc = self._procs[reader]
        while not stop.is_set():
            try:
                item = proc.receive()
            except (EOFError, OSError):
                proc.dead = True
                self._forget(reader)
                raise W2V2Error("the audio reading process died (out of memory?)") from None
            if item is None:
                continue
            kind, got = item[0], item[1]
            if kind == "log":
                log.log(item[2], "%s", item[3])
                continue
            block = proc.take(item[2], item[3]) if kind == "block" else None
            if got < ticket:  # the rest of a file given up on earlier
                if kind != "block":
                    self._open.pop(got, None)
                continue
            if block is not None:
                yield block
                continue
            del self._open[ticket]
            if kind == "error":
                raise item[2]
            return

    def _forget(self, reader: int) -> None:
        """A dead reader's files: each one left is read in the thread instead."""
        for ticket in [t for t, r in self._open.items() if r == reader]:
            del self._open[ticket]

    def pids(self) -> list[int]:
        """The reader processes' ids (once started)."""
        return [p.process.pid for p in self._procs if p.process.pid is not None]

    def close(self) -> None:
        """Stop the readers (they write nothing, so at once)."""
        procs, self._procs = self._procs, []
        for proc in procs:
            proc.stop()
        self._open.clear()
        self._next = 0
