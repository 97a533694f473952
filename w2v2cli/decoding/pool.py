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
"""

from __future__ import annotations

import multiprocessing as mp
import signal
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from ..errors import DecodeError, W2V2Error

# Worker-process state, set by the initializer.
_STATE: Any = None
_ERROR: W2V2Error | None = None


def start_method() -> str:
    """The multiprocessing start method for decode workers (see the module docstring)."""
    return "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"


def _init(build: Callable[..., Any], args: tuple[Any, ...]) -> None:
    global _STATE, _ERROR
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _STATE = build(*args)
    except W2V2Error as exc:
        _ERROR = exc
    except Exception as exc:  # noqa: BLE001 - any library failure, reported per task
        _ERROR = DecodeError(f"cannot start a decode worker: {type(exc).__name__}: {exc}")


def _run(task: Callable[..., Any], args: tuple[Any, ...]) -> Any:
    if _ERROR is not None:
        raise _ERROR
    return task(_STATE, *args)


def as_decode_error(exc: BaseException) -> W2V2Error:
    """A pool or library failure as the ``W2V2Error`` a caller reports for one file."""
    if isinstance(exc, W2V2Error):
        return exc
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

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=mp.get_context(start_method()),
                initializer=_init,
                initargs=(self._build, self._args),
            )
        return self._pool

    def submit(self, task: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run ``task(state, *args)`` in a worker; the future fails only with W2V2Error."""
        try:
            inner = self._executor().submit(_run, task, args)
        except BrokenProcessPool:
            # A worker died earlier: start a fresh pool once.
            self._drop()
            inner = self._executor().submit(_run, task, args)
        outer: Future[Any] = Future()

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
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
