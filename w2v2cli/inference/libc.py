"""Process-level fixes through the C library (``ctypes``), each a no-op where the call is
missing: the thread's alternate signal stack around OpenVINO (``keep_signal_stack``), and
dropping the resident pages of a mapped weights file (``release_mapped_pages``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def keep_signal_stack() -> Iterator[None]:
    """Give the calling thread back the alternate signal stack it had before the block.

    OpenVINO 2026.4 installs an alternate signal stack on the thread that compiles a model,
    and when that model is freed, reinstates the one it found there, which may be another
    compiled model's stack that was unmapped in the meantime (two models freed in the
    order they were made). The next signal the thread takes with a Python handler
    (Ctrl-C, SIGTERM) then crashes the process with SIGSEGV instead of stopping the run.
    Around compiling and freeing, the thread keeps its own stack (none, or Python's
    faulthandler's). A no-op where ``sigaltstack`` is missing.
    """
    import ctypes

    class StackT(ctypes.Structure):
        _fields_ = [
            ("ss_sp", ctypes.c_void_p),
            ("ss_flags", ctypes.c_int),
            ("ss_size", ctypes.c_size_t),
        ]

    try:
        sigaltstack = ctypes.CDLL(None, use_errno=True).sigaltstack
    except (OSError, AttributeError):
        yield
        return
    before = StackT()
    if sigaltstack(None, ctypes.byref(before)) != 0:
        yield
        return
    try:
        yield
    finally:
        sigaltstack(ctypes.byref(before), None)


def release_mapped_pages(path: Path) -> int:
    """Drop this process's resident pages of every read-only shared mapping of ``path``
    (Linux ``madvise(MADV_DONTNEED)``); returns the bytes of mappings advised.

    Safe for such mappings: a later read faults the page back in from the file, so only
    pages that are really used count in resident memory. A no-op where /proc or madvise
    is missing.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        madvise = libc.madvise
        madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        maps = Path("/proc/self/maps").read_text().splitlines()
    except (OSError, AttributeError):
        return 0
    target = str(path.resolve())
    advised = 0
    for line in maps:
        fields = line.split(maxsplit=5)
        if len(fields) < 6 or fields[5] != target or fields[1][:3] != "r--" or fields[1][3] != "s":
            continue
        start, end = (int(x, 16) for x in fields[0].split("-"))
        if madvise(start, end - start, 4) == 0:  # 4: MADV_DONTNEED
            advised += end - start
    return advised
