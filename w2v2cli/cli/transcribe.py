"""``w2v2 transcribe``: arguments → ``RunOptions`` + discovered inputs → ``run.iter_run``."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..errors import ConfigError
from .errors import EXIT_FAILED, Console, handle_errors
from .options import (
    build_decode_options,
    build_output_options,
    build_run_options,
    decode_options,
    model_options,
    output_options,
    quiet_option,
)

if TYPE_CHECKING:
    from ..records import FileResult
    from ..run import Progress

#: Formats written without -f: txt and json (txt alone with --stdout).
TRANSCRIBE_FORMATS = (("txt", "json"), ("txt",))


@click.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--from-list", type=click.Path(allow_dash=True),
              help="File with one input path per line ('-' for stdin).")
@click.option("--ext", "extensions", multiple=True, metavar="EXT",
              help="Only these extensions in folders (repeatable or comma list).")
@model_options
@decode_options
@output_options(TRANSCRIBE_FORMATS)
@quiet_option("No progress bar or summary; errors only.")
@handle_errors
def transcribe(inputs: tuple[Path, ...], **kw: Any) -> int:
    """Transcribe audio files and folders (searched recursively)."""
    from ..discovery import discover
    from ..fsutil import check_output_dir
    from ..run import Transcriber, iter_run

    console = Console(kw["quiet"])
    if not inputs and not kw["from_list"]:
        raise ConfigError("give at least one file or folder, or --from-list")
    extensions = [e for arg in kw["extensions"] for e in arg.split(",") if e.strip()] or None
    output = build_output_options(kw, TRANSCRIBE_FORMATS)
    options = build_run_options(kw, build_decode_options(kw), output)
    if options.output.output_dir is not None:
        check_output_dir(options.output.output_dir)  # before the model loads
    found = discover(
        inputs, extensions=extensions, from_list=kw["from_list"],
        output_dir=options.output.output_dir,
    )
    failed = 0
    for path, reason in found.errors:
        console.error(f"{path}: {reason}")
        failed += 1
    if not found.items:
        console.error("no audio files found")
        return EXIT_FAILED

    started = time.perf_counter()
    with Transcriber(options, notify=console.info) as transcriber:
        transcriber.decoder  # noqa: B018 - build it now: a bad LM fails before any file
        return run_files(
            lambda progress: iter_run(found.items, transcriber, progress=progress,
                                      stream=sys.stdout),
            console, kw["quiet"], failed, started,
        )


def run_files(
    results: Callable[[Progress], Iterator[FileResult]], console: Console, quiet: bool,
    failed: int, started: float, label: str = "transcribing",
) -> int:
    """Draw the progress bar, print each failed file's line and the summary line, and
    return the exit status (``transcribe`` and ``align``). ``failed``: inputs that already
    failed before the run (missing files); ``started``: when the command's work began
    (model loading included in the summary's time)."""
    from ..run import NullProgress
    from .progress import RichProgress
    from .render import format_seconds

    counts = {"done": 0, "skipped": 0, "failed": 0}
    audio_seconds = 0.0
    progress = NullProgress() if quiet else RichProgress(console.err, label)
    with progress:
        for result in results(progress):
            counts[result.status] += 1
            if result.status == "done":
                audio_seconds += result.duration
            elif result.status == "failed":
                console.error(f"{result.item.path}: {result.error}")
    wall = time.perf_counter() - started
    failed += counts["failed"]
    speed = f", {audio_seconds / wall:.1f} x real time" if wall > 0 and audio_seconds else ""
    console.info(
        f"{counts['done']} done, {counts['skipped']} skipped, {failed} failed; "
        f"{format_seconds(audio_seconds)} of audio in {format_seconds(wall)}{speed}"
    )
    return EXIT_FAILED if failed else 0
