"""``w2v2 transcribe``: arguments → ``RunOptions`` + discovered inputs → ``run.iter_run``."""

from __future__ import annotations

import contextlib
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..discovery import discover
from ..errors import ConfigError
from ..fsutil import check_output_dir
from ..pipeline import NullProgress
from ..run import Transcriber, iter_run
from ..scale import RunManifest
from ..scale.ray_data import RayOptions, iter_run_ray
from .builders import build_decode_options, build_output_options, build_run_options, build_shard
from .errors import EXIT_FAILED, Console, handle_errors
from .options import decode_options, model_options, output_options, quiet_option, scale_options
from .progress import RichProgress
from .render import format_seconds

if TYPE_CHECKING:
    from ..discovery import Discovery
    from ..pipeline import Progress
    from ..records import FileResult
    from ..scale import RunManifest, Shard

#: Formats written without -f: txt and json (txt alone with --stdout).
TRANSCRIBE_FORMATS = (("txt", "json"), ("txt",))


@click.command()
@click.argument("inputs", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--from-list",
    type=click.Path(allow_dash=True),
    help="File with one input path per line ('-' for stdin).",
)
@click.option(
    "--ext",
    "extensions",
    multiple=True,
    metavar="EXT",
    help="Only these extensions in folders (repeatable or comma list).",
)
@model_options
@decode_options
@output_options(TRANSCRIBE_FORMATS)
@scale_options
@click.option(
    "--ray",
    "ray_address",
    is_flag=False,
    flag_value="auto",
    default=None,
    metavar="[ADDRESS]",
    help="Run on Ray Data: the cluster at ADDRESS, else the one RAY_ADDRESS names, "
    "else a local one (needs the ray extra).",
)
@click.option(
    "--ray-actors",
    type=click.IntRange(min=1),
    metavar="N",
    help="Model actors with --ray [default: one per GPU on CUDA, else one per "
    "--threads CPUs of the cluster].",
)
@quiet_option("No progress bar or summary; errors only.")
@handle_errors
def transcribe(inputs: tuple[Path, ...], **kw: Any) -> int:
    """Transcribe audio files and folders (searched recursively)."""
    console = Console(kw["quiet"])
    if not inputs and not kw["from_list"]:
        raise ConfigError("give at least one file or folder, or --from-list")
    if kw["ray_actors"] is not None and kw["ray_address"] is None:
        raise ConfigError("--ray-actors needs --ray")
    kw["ray_address"], inputs = ray_address(kw["ray_address"], inputs)
    extensions = [e for arg in kw["extensions"] for e in arg.split(",") if e.strip()] or None
    output = build_output_options(kw, TRANSCRIBE_FORMATS)
    options = build_run_options(kw, build_decode_options(kw), output)
    shard = build_shard(kw)
    if options.output.output_dir is not None:
        check_output_dir(options.output.output_dir)  # before the model loads
    found = discover(
        inputs,
        extensions=extensions,
        from_list=kw["from_list"],
        output_dir=options.output.output_dir,
        shard=shard,
    )
    with open_manifest(kw, shard) as manifest:
        failed = report_input_errors(found, console, manifest, shard)
        if not found.items:
            if not failed:
                console.error(
                    "no audio files found"
                    if not found.found
                    else f"no audio files in shard {shard}"
                )
            return EXIT_FAILED if failed or not found.found else 0

        started = time.perf_counter()
        if kw["ray_address"] is not None:
            ray_options = RayOptions(address=kw["ray_address"], actors=kw["ray_actors"])
            results = sys.stdout
            # Ray prints its cluster's messages (a worker that died) on sys.stdout, from a
            # thread of its own: stdout carries only results, so those go to stderr.
            with contextlib.redirect_stdout(sys.stderr):
                return run_files(
                    lambda progress: iter_run_ray(
                        found.items,
                        options,
                        ray_options,
                        progress=progress,
                        stream=results,
                        notify=console.info,
                    ),
                    console,
                    kw["quiet"],
                    failed,
                    started,
                    manifest=manifest,
                )
        with Transcriber(options, notify=console.info) as transcriber:
            transcriber.decoder  # noqa: B018 - build it now: a bad LM fails before any file
            return run_files(
                lambda progress: iter_run(
                    found.items, transcriber, progress=progress, stream=sys.stdout
                ),
                console,
                kw["quiet"],
                failed,
                started,
                manifest=manifest,
            )


def ray_address(value: str | None, inputs: tuple[Path, ...]) -> tuple[str | None, tuple[Path, ...]]:
    """``--ray``'s optional ADDRESS, told apart from an input that follows the flag
    (``--ray talks/``): an address is ``auto``, ``local``, ``scheme://...`` or
    ``host:port``; an existing path is the first input, and ``--ray`` means ``auto``."""
    if value is None or value in ("auto", "local") or "://" in value:
        return value, inputs
    if re.fullmatch(r"[\w.\-\[\]:]+:\d+", value) and not Path(value).exists():
        return value, inputs
    if Path(value).exists() or set("*?[") & set(value):
        return "auto", (Path(value), *inputs)
    raise ConfigError(
        f"--ray {value}: not a Ray address (host:port or ray://host:port) nor an input path"
    )


@contextlib.contextmanager
def open_manifest(kw: dict[str, Any], shard: Shard | None) -> Iterator[RunManifest | None]:
    """The ``--manifest-out`` file, opened for appending (None without the option)."""
    if kw["manifest_out"] is None:
        yield None
        return

    with RunManifest(kw["manifest_out"], None if shard is None else str(shard)) as manifest:
        yield manifest


def report_input_errors(
    found: Discovery, console: Console, manifest: RunManifest | None, shard: Shard | None
) -> int:
    """Print (and record) each input that could not be used; their count. With a shard,
    says which part of the inputs this run has."""
    for path, reason in found.errors:
        console.error(f"{path}: {reason}")
        if manifest is not None:
            manifest.add_input_error(path, reason)
    if shard is not None:
        console.info(f"shard {shard}: {len(found.items)} of {found.found} files")
    return len(found.errors)


def run_files(
    results: Callable[[Progress], Iterator[FileResult]],
    console: Console,
    quiet: bool,
    failed: int,
    started: float,
    label: str = "transcribing",
    *,
    manifest: RunManifest | None = None,
) -> int:
    """Draw the progress bar, print each failed file's line and the summary line, and
    return the exit status (``transcribe`` and ``align``). ``failed``: inputs that already
    failed before the run (missing files); ``started``: when the command's work began
    (model loading included in the summary's time); ``manifest``: where each result's
    line goes as it finishes."""
    counts = {"done": 0, "skipped": 0, "failed": 0}
    audio_seconds = 0.0
    progress = NullProgress() if quiet else RichProgress(console.err, label)
    with progress:
        for result in results(progress):
            counts[result.status] += 1
            if manifest is not None:
                manifest.add(result)
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
