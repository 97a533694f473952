"""What a run does with each file's result, the same for the local driver (``run.py``)
and the Ray driver (``scale/ray_data.py``): ``pending`` (what is left to do, the writers,
the stream), ``write_outputs`` (one file's outputs; a failure fails that file only),
``RunSummary``, and the ``Progress`` a run reports to."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from ..errors import ConfigError
from ..fsutil import check_output_dir
from ..options import OutputOptions
from ..output import Writer, get_writers
from ..records import AudioItem, FileResult, Transcript

log = logging.getLogger("w2v2cli")


class Progress(Protocol):
    """What a run reports as it goes (the CLI draws a bar; ``NullProgress`` does nothing)."""

    def start(self, files: int, audio_seconds: float | None) -> None: ...
    def advance_audio(self, seconds: float) -> None: ...
    def file_done(self) -> None: ...
    def close(self) -> None: ...


class NullProgress:
    """Reports nothing; for ``--quiet`` and for library callers."""

    def start(self, files: int, audio_seconds: float | None) -> None:
        pass

    def advance_audio(self, seconds: float) -> None:
        pass

    def file_done(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


@dataclass
class RunSummary:
    """Counts and times for the end-of-run summary and the exit status."""

    results: list[FileResult] = field(default_factory=list)
    wall_seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(1 for r in self.results if r.status == status)

    @property
    def audio_seconds(self) -> float:
        return sum(r.duration for r in self.results if r.status == "done")

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == "failed"]


def write_outputs(
    transcript: Transcript,
    item: AudioItem,
    writers: list[Writer],
    stream: TextIO | None,
    header: bool,
    rendered: Sequence[str | Exception] | None = None,
) -> FileResult:
    """Write every output of one file (to ``stream`` if given, else to files); any failure
    fails this file only. ``rendered``: each writer's text already made (or the error
    making it raised) by a file worker (``pipeline/workers.py``): for a stream, its
    ``stream_text``."""
    paths: list[Path] = []
    for n, w in enumerate(writers):
        try:
            if rendered is not None:
                if isinstance(rendered[n], Exception):
                    raise rendered[n]
                if stream is not None:
                    stream.write(str(rendered[n]))
                    stream.flush()
                else:
                    paths.append(w.write_text(str(rendered[n]), item))
            elif stream is not None:
                stream.write(w.stream_text(transcript, item, header))
                stream.flush()
            else:
                paths.append(w.write(transcript, item))
        except BrokenPipeError:
            raise  # the reader of --stdout is gone (`| head`): the whole run is over
        except OSError as exc:
            where = "standard output" if stream is not None else str(w.output_path(item))
            reason = exc.strerror or str(exc) or type(exc).__name__
            return FileResult(
                item, "failed", transcript.duration, error=f"cannot write {where}: {reason}"
            )
        except Exception as exc:  # a formatting bug must not cost the other files
            log.debug("writing %s failed", item.path, exc_info=True)
            return FileResult(
                item,
                "failed",
                transcript.duration,
                error=f"cannot format the {w.extension} output: {type(exc).__name__}: {exc}",
            )
    return FileResult(item, "done", transcript.duration, transcript, outputs=tuple(paths))


def pending(
    items: Sequence[AudioItem], out: OutputOptions, stream: TextIO | None = None
) -> tuple[list[AudioItem], list[FileResult], list[Writer], TextIO | None]:
    """What a run has to do: the items to process, the ``skipped`` results of those whose
    every output exists (unless ``overwrite``), the writers, and the stream results go to
    (``sys.stdout`` by default with ``out.stdout``; None when writing files).

    Raises ``ConfigError`` for --stdout with several formats and ``OutputError`` when the
    output folder cannot be written, before any work.
    """
    writers = get_writers(out.formats, out.subtitles, out.case)
    if out.stdout and len(writers) != 1:
        raise ConfigError("--stdout writes exactly one format; choose it with -f")
    if out.stdout:
        stream = stream if stream is not None else sys.stdout
    else:
        stream = None
        if out.output_dir is not None:
            check_output_dir(out.output_dir)
    todo: list[AudioItem] = []
    skipped: list[FileResult] = []
    for item in items:
        if (
            stream is None
            and not out.overwrite
            and all(w.output_path(item).exists() for w in writers)
        ):
            skipped.append(FileResult(item, "skipped"))
        else:
            todo.append(item)
    return todo, skipped, writers, stream
