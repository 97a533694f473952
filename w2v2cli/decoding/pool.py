"""The one process pool for CPU-heavy decoding: beam search in ``transcribe``/``eval`` and
the (alpha, beta) search of ``lm tune``.

``WorkerPool(workers, build, *args)``: every worker process calls ``build(*args)`` once, in
the pool's initializer, and keeps the result (a decoder, a tuner) as its state;
``submit(task, *args)`` runs ``task(state, *args)`` in a worker. ``build`` and ``task`` must
be module-level functions (they are pickled by name).

- **Start method.** ``forkserver`` (``spawn`` where there is none): the parent has torch's
  thread pools (and maybe CUDA) running, and forking a process with live threads can
  deadlock the child or break CUDA; forkserver children come from a clean single-threaded
  server, start faster than spawned ones and never import torch.
- **Errors.** An initializer that raises breaks the whole pool with an unhelpful message,
  so a failure in ``build`` is kept and raised by every task instead. A task's
  ``W2V2Error`` reaches the caller as it is; any other exception becomes a
  ``DecodeError``; a worker that dies (killed for memory) fails the tasks it took with a
  ``DecodeError``, and the next ``submit`` starts a fresh pool. Futures returned by
  ``submit`` therefore only ever fail with ``W2V2Error``.
- **Signals.** Workers ignore SIGINT: Ctrl-C reaches the whole process group, and the
  parent decides what to stop (``close`` waits for running tasks and cancels the rest).
  SIGTERM (sent to the whole group by schedulers and service managers) stops a worker the
  way it stops the parent: in a task, ``Terminated`` is raised through ``fsutil.interrupt``
  (a file the task was writing is removed, never left half-written), then the worker
  exits; an idle worker exits at once. A worker also exits when the process that started
  the pool is gone (killed with SIGKILL): it would otherwise wait for work for ever.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver
from typing import Any

from ..errors import DecodeError, Terminated, W2V2Error
from ..fsutil import interrupt

# Worker-process state, set by the initializer.
_STATE: Any = None
_ERROR: W2V2Error | None = None
_IN_TASK = False


def start_method() -> str:
    """The multiprocessing start method for decode workers (see the module docstring)."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


_EXIT_STATUS = 128 + signal.SIGTERM
_STOPPING = False


def _terminate(_signum: int, _frame: object) -> None:
    global _STOPPING
    if _IN_TASK:
        _STOPPING = True  # ``_run`` exits once the task has unwound
        interrupt(Terminated())  # unwinds the task: its temporary files are removed
    else:
        os._exit(_EXIT_STATUS)


def watch_parent(parent: int) -> None:
    """A worker's watch (a daemon thread): once ``parent`` is gone, the worker has no one
    to work for; ``getppid`` changes when the process it was forked from exits, which the
    forkserver does as soon as the pool's owner is gone."""
    forked_from = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != forked_from or not _alive(parent):
            os._exit(_EXIT_STATUS)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process took the id
        return True
    return True


def start_server(modules: tuple[str, ...] = ()) -> None:
    """Start the forkserver now, with ``modules`` imported in it, so that workers forked
    from it later start at once instead of each importing them (a pool's first task would
    wait for that). Does nothing once the server runs, or where there is no forkserver."""
    if start_method() != "forkserver":
        return
    forkserver.set_forkserver_preload([__name__, *modules])
    forkserver.ensure_running()


def _noop(_state: Any) -> None:
    return None


def _init(build: Callable[..., Any], args: tuple[Any, ...], parent: int) -> None:
    global _STATE, _ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _terminate)
    threading.Thread(target=watch_parent, args=(parent,), daemon=True).start()
    try:
        _STATE = build(*args)
    except W2V2Error as exc:
        _ERROR = exc
    except Exception as exc:  # noqa: BLE001 - any library failure, reported per task
        _ERROR = DecodeError(f"cannot start a decode worker: {type(exc).__name__}: {exc}")


def _run(task: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    global _IN_TASK
    if _ERROR is not None:
        raise _ERROR
    _IN_TASK = True
    try:
        return task(_STATE, *args)
    finally:
        _IN_TASK = False
        if _STOPPING:
            os._exit(_EXIT_STATUS)


def as_decode_error(exc: BaseException) -> W2V2Error:
    """A pool or library failure as the ``W2V2Error`` a caller reports for one file."""
    if isinstance(exc, W2V2Error):
        return exc
    if isinstance(exc, Terminated):
        return DecodeError("stopped by SIGTERM")
    if isinstance(exc, BrokenProcessPool):
        return DecodeError("a decode worker process died (out of memory?)")
    return DecodeError(f"decoding failed: {type(exc).__name__}: {exc}")


class WorkerPool:
    """``workers`` processes, started on the first ``submit``, each holding one state."""

    def __init__(self, workers: int, build: Callable[..., Any], *args: Any) -> None:
        if workers < 1:
            raise ValueError("a worker pool needs at least one worker")
        self.workers = workers
        self._build = build
        self._args = args
        self._pool: ProcessPoolExecutor | None = None
        self._started: list[Future[Any]] = []
        self._in_flight: set[Future[Any]] = set()
        self._lock = threading.RLock()  # ``start``'s thread and the caller's both submit
        self._starter: threading.Thread | None = None

    def _executor(self) -> ProcessPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ProcessPoolExecutor(
                    max_workers=self.workers,
                    mp_context=mp.get_context(start_method()),
                    initializer=_init,
                    initargs=(self._build, self._args, os.getpid()),
                )
            return self._pool

    def start(self) -> None:
        """Start every worker now, from a thread: the caller goes on at once (starting a
        process waits for the forkserver, which may still be importing) and the workers
        build their state meanwhile."""

        def start_all() -> None:
            start_server((self._build.__module__,))
            self._started = [self.submit(_noop) for _ in range(self.workers)]

        self._starter = threading.Thread(target=start_all, name="w2v2-workers", daemon=True)
        self._starter.start()

    def pids(self, wait: bool = False) -> list[int]:
        """The worker processes' ids (after ``start`` and, with ``wait``, once they run)."""
        if wait and self._starter is not None:
            self._starter.join()
        for f in self._started if wait else ():
            f.exception()
        pool = self._pool
        return sorted(pool._processes or {}) if pool is not None else []  # noqa: SLF001

    def in_flight(self) -> int:
        """Tasks submitted and not finished yet."""
        return len(self._in_flight)

    def submit(self, task: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``task(state, *args)`` in a worker; the future fails only with W2V2Error."""
        try:
            inner = self._executor().submit(_run, task, args)
        except BrokenProcessPool:
            # A worker died earlier: start a fresh pool once.
            self._drop()
            inner = self._executor().submit(_run, task, args)
        outer: Future[Any] = Future()
        self._in_flight.add(outer)
        outer.add_done_callback(self._in_flight.discard)

        def done(f: Future[Any]) -> None:
            if f.cancelled():
                outer.cancel()
            elif f.exception() is not None:
                outer.set_exception(as_decode_error(f.exception()))  # type: ignore[arg-type]
            else:
                outer.set_result(f.result())

        inner.add_done_callback(done)
        return outer

    def _drop(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Stop the workers, waiting for running tasks; queued ones are cancelled."""
        if self._starter is not None:
            self._starter.join()
            self._starter = None
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
