"""``w2v2 transcribe``: arguments → ``RunOptions`` + discovered inputs → ``run.iter_run``."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from ..errors import ConfigError
from ..options import FORMATS, OutputOptions, SubtitleOptions
from .errors import EXIT_FAILED, Console, handle_errors
from .options import (
    build_decode_options,
    build_run_options,
    decode_options,
    model_options,
    quiet_option,
)


def _output_options(kw: dict[str, Any]) -> OutputOptions:
    from ..output import expand_formats

    output_dir = kw["output_dir"]
    stdout = kw["stdout"] or output_dir == "-"
    formats = expand_formats(kw["formats"] or (("txt",) if stdout else ("txt", "json")))
    if stdout and len(formats) != 1:
        raise ConfigError("--stdout writes exactly one format; choose it with -f")
    return OutputOptions(
        output_dir=None if stdout or output_dir is None else Path(output_dir),
        formats=formats,
        overwrite=kw["overwrite"],
        stdout=stdout,
        case=kw["case"],
        subtitles=SubtitleOptions(
            max_line_chars=kw["max_line_chars"],
            max_lines=kw["max_lines"],
            max_cue_duration=kw["max_cue_duration"],
            pause=kw["pause"],
            min_cue_duration=kw["min_cue_duration"],
        ),
    )


@click.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option("--from-list", type=click.Path(allow_dash=True),
              help="File with one input path per line ('-' for stdin).")
@click.option("--ext", "extensions", multiple=True, metavar="EXT",
              help="Only these extensions in folders (repeatable or comma list).")
@model_options
@decode_options
@click.option("-o", "--output-dir", metavar="DIR",
              help="Write outputs under DIR, mirroring the input tree ('-' for stdout). "
                   "Default: next to each input file.")
@click.option("-f", "--format", "formats", multiple=True,
              type=click.Choice([*FORMATS, "all"]),
              help="Output format (repeatable): txt, json, srt, vtt, tsv or all "
                   "[default: txt and json; txt with --stdout].")
@click.option("--stdout", is_flag=True, help="Write results to stdout instead of files.")
@click.option("--overwrite", is_flag=True, help="Redo files whose outputs already exist.")
@click.option("--case", type=click.Choice(["keep", "lower", "sentence"]), default="keep",
              show_default=True, help="Letter case of the written text.")
@click.option("--max-line-chars", type=click.IntRange(min=1),
              default=SubtitleOptions.max_line_chars, show_default=True,
              help="Subtitle line length limit.")
@click.option("--max-lines", type=click.IntRange(min=1), default=SubtitleOptions.max_lines,
              show_default=True, help="Lines per subtitle cue.")
@click.option("--max-cue-duration", type=click.FloatRange(min=0, min_open=True),
              default=SubtitleOptions.max_cue_duration, show_default=True,
              help="Longest subtitle cue in seconds.")
@click.option("--pause", type=click.FloatRange(min=0, min_open=True),
              default=SubtitleOptions.pause, show_default=True,
              help="A silence this long (seconds) between words starts a new cue.")
@click.option("--min-cue-duration", type=click.FloatRange(min=0),
              default=SubtitleOptions.min_cue_duration, show_default=True,
              help="Shortest display time of a cue in seconds.")
@quiet_option("No progress bar or summary; errors only.")
@handle_errors
def transcribe(inputs: tuple[Path, ...], **kw: Any) -> int:
    """Transcribe audio files and folders (searched recursively)."""
    from ..discovery import discover
    from ..fsutil import check_output_dir
    from ..run import NullProgress, Transcriber, iter_run
    from .progress import RichProgress
    from .render import format_seconds

    console = Console(kw["quiet"])
    if not inputs and not kw["from_list"]:
        raise ConfigError("give at least one file or folder, or --from-list")
    extensions = [e for arg in kw["extensions"] for e in arg.split(",") if e.strip()] or None
    options = build_run_options(kw, build_decode_options(kw), _output_options(kw))
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

    counts = {"done": 0, "skipped": 0, "failed": 0}
    audio_seconds = 0.0
    started = time.perf_counter()
    with Transcriber(options, notify=console.info) as transcriber:
        transcriber.decoder  # noqa: B018 - build it now: a bad LM fails before any file
        progress = NullProgress() if kw["quiet"] else RichProgress(console.err)
        with progress:
            for result in iter_run(found.items, transcriber, progress=progress,
                                   stream=sys.stdout):
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
