"""The one mapping from faults to messages and exit statuses, for every command alike.

=====  ==============================================================================
exit   meaning
=====  ==============================================================================
0      everything asked for was done
1      the command ran, but some inputs failed (each named in one ``error:`` line), or
       ``eval --fail-above`` was exceeded
2      the command could not run: bad options or arguments, a model, LM, manifest or
       tool that cannot be used, an output path that cannot be written
130    interrupted (Ctrl-C, SIGINT)
141    standard output was closed by its reader (``w2v2 ... --stdout | head``): the run
       stops quietly, as a shell tool killed by SIGPIPE would
143    terminated (SIGTERM, what schedulers and ``kill`` send)
=====  ==============================================================================

Every ``W2V2Error`` (``errors.py``) that reaches a command ends it with one ``error: ...``
line on stderr and status 2; Click's own usage errors also exit 2. SIGTERM is turned into
an exception (``Terminated``, a ``KeyboardInterrupt``) so it unwinds exactly like Ctrl-C:
temporary files are removed on the way out, finished outputs are kept.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console as RichConsole

from ..errors import Terminated, W2V2Error
from ..fsutil import interrupt

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141
EXIT_TERMINATED = 143


class Console:
    """Messages on stderr (stdout carries only results). Errors always print; ``info``
    is silenced by ``--quiet``. A progress bar drawn on ``self.err`` keeps these lines
    above it."""

    def __init__(self, quiet: bool = False) -> None:
        self.quiet = quiet
        self.err = RichConsole(stderr=True, highlight=False)

    def error(self, text: str) -> None:
        self.err.print("[bold red]error:[/] ", end="", markup=True)
        self.err.print(one_line(text), soft_wrap=True, markup=False)

    def info(self, text: str) -> None:
        if not self.quiet:
            self.err.print(text, soft_wrap=True, markup=False)


def one_line(text: str) -> str:
    """Messages are one line: inner line breaks become spaces."""
    return " ".join(str(text).split())


@contextmanager
def sigterm_as_exception() -> Iterator[None]:
    """While inside, SIGTERM raises ``Terminated`` and SIGINT ``KeyboardInterrupt`` in the
    main thread (elsewhere: no-op), through ``fsutil.interrupt``, which holds them back for
    the instant a temporary output file is being created so that it is always cleaned up."""

    def raise_terminated(_signum: int, _frame: object) -> None:
        interrupt(Terminated())

    def raise_interrupt(_signum: int, _frame: object) -> None:
        interrupt(KeyboardInterrupt())

    try:
        previous = signal.signal(signal.SIGTERM, raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is signal.default_int_handler:
        signal.signal(signal.SIGINT, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
        if previous_int is signal.default_int_handler:
            signal.signal(signal.SIGINT, previous_int)


def handle_errors(command: Callable[..., int | None]) -> Callable[..., None]:
    """Wrap a command body: its return value is the exit status; faults are mapped here."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        console = Console()
        try:
            with sigterm_as_exception():
                status = command(*args, **kwargs)
        except BrokenPipeError:
            # Nothing more can reach stdout; point it at /dev/null so that Python's final
            # flush does not complain, and stop without a message.
            try:
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            except (OSError, ValueError):  # no real file descriptor (an embedding caller)
                pass
            sys.exit(EXIT_BROKEN_PIPE)
        except Terminated:
            console.error("terminated; finished outputs are kept, no partial file was written")
            sys.exit(EXIT_TERMINATED)
        except KeyboardInterrupt:
            console.error("interrupted; finished outputs are kept, no partial file was written")
            sys.exit(EXIT_INTERRUPTED)
        except W2V2Error as exc:
            console.error(str(exc))
            sys.exit(EXIT_USAGE)
        except OSError as exc:  # an I/O fault no module turned into a W2V2Error
            where = f"{exc.filename}: " if exc.filename else ""
            console.error(f"{where}{exc.strerror or exc}")
            sys.exit(EXIT_USAGE)
        if status:
            sys.exit(status)

    return wrapper
