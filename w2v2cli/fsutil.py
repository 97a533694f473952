"""The one way this package writes files and folders: atomically, with the user's umask.

Every output (transcripts, subtitles, reports, saved logits, LM files, ``language_model/``
folders, ``attrs.json``) is written to a hidden temporary name in its destination folder,
flushed and fsynced, then renamed over the destination. Readers, resumed runs and a second
run writing the same folder see the old file or the new one, never half of one; any
failure, Ctrl-C or SIGTERM included, removes the temporary file or folder. A process killed
with SIGKILL can leave a hidden ``.NAME.XXXXXXXX.tmp`` behind, never a partial output.

Permissions follow the umask, like any file a shell command creates (``tempfile.mkstemp``
and ``mkdtemp`` would make them 0600/0700): files are created with mode 0666 and folders
with 0777, both minus the umask. A file that replaces one keeps the mode of the old file.

``check_output_file`` and ``check_output_dir`` let commands refuse an unwritable output
path before any work starts, so a long run never ends in a path error.

The caches the tool writes (converted checkpoints, OpenVINO IRs) repair themselves with
three more helpers: ``locked`` (an exclusive ``fcntl`` lock on a file beside an entry,
held while it is checked, set aside and rebuilt, so two runs never rebuild one entry at
once; the kernel drops it when a process dies, SIGKILL included), ``set_aside`` (a damaged
entry renamed out of the way at once, then removed) and ``remove_leftovers`` (what killed
runs left of an entry: temporary folders, entries set aside but not yet removed).
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from .errors import OutputError


def temp_path(path: Path, suffix: str = ".tmp") -> Path:
    """A hidden, unused-looking name next to ``path`` (``.NAME.RANDOM.tmp``)."""
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")


def _create_temp(path: Path) -> tuple[int, Path]:
    """A new temporary file next to ``path``, its folder made first if it is missing
    (tried only then: a ``mkdir`` per output cost as much as formatting it)."""
    for _ in range(100):
        tmp = temp_path(path)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
        except FileNotFoundError:
            if path.parent.is_dir():
                raise
            path.parent.mkdir(parents=True, exist_ok=True)
    raise FileExistsError(f"cannot create a temporary file next to {path}")


class _Held:
    """Interruptions held back while a temporary file is being created (``interrupt``)."""

    depth = 0
    pending: BaseException | None = None


def interrupt(exc: BaseException) -> None:
    """Raise ``exc`` (a signal handler's ``KeyboardInterrupt`` or ``Terminated``) now, or,
    inside the few instructions between creating a temporary file and recording its name,
    as soon as they are over, where the file's cleanup will see it. A signal handler that
    raised directly could strike right after ``os.open`` returned and leave the file."""
    if _Held.depth:
        _Held.pending = exc
        return
    raise exc


def _release() -> None:
    _Held.depth -= 1
    if _Held.depth == 0 and _Held.pending is not None:
        exc, _Held.pending = _Held.pending, None
        raise exc


@contextmanager
def interruptions_held() -> Iterator[None]:
    """Hold back Ctrl-C and SIGTERM (``interrupt``) for a short block that must not stop
    halfway, and raise a held one as the block ends."""
    _Held.depth += 1
    try:
        yield
    finally:
        _release()


@contextmanager
def atomic_file(
    path: str | Path, mode: str = "w", *, encoding: str | None = "utf-8", newline: str | None = ""
) -> Iterator[IO[Any]]:
    """Open a temporary file next to ``path``; on a clean exit it is fsynced and renamed
    over ``path`` (parents are created). ``mode`` is ``"w"`` (text, UTF-8, ``\\n`` line
    ends by default) or ``"wb"``. On any exception the temporary file is removed and the
    old ``path``, if any, is untouched."""
    path = Path(path)
    old_mode = _existing_mode(path)
    tmp: Path | None = None
    _Held.depth += 1  # an interruption now is raised by _release, inside the try
    try:
        fd, tmp = _create_temp(path)
        _release()
        if "b" in mode:
            handle: IO[Any] = os.fdopen(fd, mode)
        else:
            handle = os.fdopen(fd, mode, encoding=encoding, newline=newline)
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        if old_mode is not None:
            os.chmod(tmp, old_mode)
        os.replace(tmp, path)
    except BaseException:
        if tmp is None:  # _create_temp failed: no file; an interruption held goes first
            _release()
        else:
            tmp.unlink(missing_ok=True)
        raise


def atomic_write(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` (text as UTF-8, or bytes) to ``path`` atomically; returns the path."""
    with atomic_file(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return Path(path)


def atomic_copy(source: str | Path, path: str | Path) -> Path:
    """Copy ``source`` to ``path`` atomically (bytes, in blocks)."""
    with open(source, "rb") as src, atomic_file(path, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    return Path(path)


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """A temporary folder next to ``path`` to fill; renamed to ``path`` on a clean exit.

    ``path`` must not exist (a folder cannot be replaced atomically): ``OutputError``.
    Another process that creates ``path`` meanwhile wins, and this one fails with
    ``OutputError`` without touching it. On any exception the temporary folder goes.
    """
    path = Path(path)
    if path.exists():
        raise OutputError(f"{path} already exists; remove it first to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, ".dir")
    os.mkdir(tmp, 0o777)
    try:
        yield tmp
        try:
            os.rename(tmp, path)  # fails if path appeared meanwhile and is not empty
        except OSError as exc:
            raise OutputError(f"cannot create {path}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def locked(path: str | Path, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on the file ``path`` (created if missing, never removed:
    removing a lock file lets two processes lock two different files) while inside.
    ``on_wait`` is called once when another process holds it, before waiting for it.
    A lock file that cannot be created is an ``OutputError`` naming it."""
    import fcntl  # deferred: POSIX only, and only the caches' repairs lock

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise OutputError(f"cannot lock {path}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def set_aside(path: str | Path) -> None:
    """Move the folder or file ``path`` out of the way at once (renamed to a hidden
    ``.NAME.XXXXXXXX.damaged`` beside it, so nothing can read it half-removed), then
    remove it. A removal that fails leaves the hidden name for ``remove_leftovers``."""
    path = Path(path)
    aside = temp_path(path, ".damaged")
    os.rename(path, aside)
    if aside.is_dir():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink(missing_ok=True)


def remove_leftovers(path: str | Path) -> list[Path]:
    """Remove what killed processes left of ``path``: its temporary folders and files
    (``atomic_dir``, ``atomic_file``) and copies set aside (``set_aside``). Only safe
    under the lock every writer of ``path`` holds (``locked``); returns what went."""
    path = Path(path)
    gone = []
    for suffix in (".dir", ".tmp", ".damaged"):
        for leftover in path.parent.glob(f".{glob.escape(path.name)}.*{suffix}"):
            if leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
            gone.append(leftover)
    return gone


def _existing_mode(path: Path) -> int | None:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return None


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _write_probe(folder: Path) -> str | None:
    """None if a file can be created in ``folder``, else the reason. A real attempt, not
    ``os.access``: that says yes to root on a read-only mount."""
    try:
        fd, tmp = _create_temp(folder / ".w2v2-probe")
    except OSError as exc:
        return exc.strerror or str(exc)
    os.close(fd)
    tmp.unlink(missing_ok=True)
    return None


def _cannot_create(path: Path) -> str | None:
    """Why ``path`` (which does not exist) could not be created, or None if it can."""
    base = _nearest_existing(path)
    if not base.is_dir():
        return f"{base} is a file"
    reason = _write_probe(base)
    return f"{base} is not writable: {reason}" if reason else None


def check_output_dir(path: str | Path, what: str = "output folder") -> Path:
    """Refuse a folder that cannot receive outputs, without creating anything.

    It is fine if it does not exist yet, as long as its nearest existing ancestor is a
    writable folder (it is created when the first output is written). Raises
    ``OutputError`` naming the path: a file in the way, no permission, a read-only mount.
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise OutputError(f"{what} {path} is a file, not a folder")
        reason = _write_probe(path)
        if reason:
            raise OutputError(f"{what} {path} is not writable: {reason}")
        return path
    reason = _cannot_create(path)
    if reason:
        raise OutputError(f"{what} {path} cannot be created: {reason}")
    return path


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """Refuse a file path that cannot be written (see ``check_output_dir``): a folder at the
    path, a parent that is a file, a folder that is not writable."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{what} {path} is a folder")
    folder = path.absolute().parent
    reason = _write_probe(folder) if folder.is_dir() else _cannot_create(folder)
    if reason:
        raise OutputError(f"{what} {path} cannot be created: {reason}")
    return path
