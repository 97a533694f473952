"""``w2v2 align``: (audio, known text) pairs → ``alignment.iter_align`` → the transcript
writers. ``AUDIO TEXT_FILE`` is one pair; ``MANIFEST`` is any manifest ``eval`` reads."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..discovery import discover
from ..errors import ConfigError
from ..evaluation import load_manifest
from ..fsutil import check_output_dir
from ..options import AlignOptions, DecodeOptions, RunOptions
from ..run import Aligner, iter_align
from .builders import build_output_options, build_run_options, build_shard
from .errors import EXIT_FAILED, Console, handle_errors
from .options import model_options, output_options, quiet_option, scale_options
from .transcribe import open_manifest, report_input_errors, run_files

if TYPE_CHECKING:
    from ..discovery import Discovery
    from ..scale import RunManifest, Shard

#: Formats written without -f: json (the word times), to files and to stdout alike.
ALIGN_FORMATS = (("json",), ("json",))


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _pairs(inputs: tuple[Path, ...]) -> list[tuple[Path, str]]:
    """(audio path, text) from ``AUDIO TEXT_FILE`` or ``MANIFEST``."""
    if len(inputs) == 2:
        audio, text = inputs
        return [(audio, _read_text(text))]
    if len(inputs) != 1:
        raise ConfigError("give AUDIO TEXT_FILE, or one MANIFEST")

    return [(entry.audio, entry.text) for entry in load_manifest(inputs[0])]


@click.command("align")
@click.argument(
    "inputs",
    nargs=-1,
    required=True,
    type=click.Path(path_type=Path),
    metavar="AUDIO TEXT_FILE | MANIFEST",
)
@model_options
@click.option(
    "--min-score",
    type=click.FloatRange(0, 1),
    default=AlignOptions.min_score,
    show_default=True,
    help="A file whose text matches its audio worse than this (0..1) fails instead "
    "of being aligned; 0 aligns whatever the text.",
)
@output_options(ALIGN_FORMATS)
@scale_options
@quiet_option("No progress bar or summary; errors only.")
@handle_errors
def align_command(inputs: tuple[Path, ...], **kw: Any) -> int:
    """Give each word of a known text its times in the audio (CTC forced alignment).

    AUDIO TEXT_FILE aligns one file; MANIFEST (JSON lines, TSV/CSV, or a folder of audio
    with .txt files beside it, as eval reads) aligns each audio file to its text.
    """
    console = Console(kw["quiet"])
    output = build_output_options(kw, ALIGN_FORMATS)
    options = build_run_options(kw, DecodeOptions(), output)
    align_options = AlignOptions(min_score=kw["min_score"])
    pairs = _pairs(inputs)
    if output.output_dir is not None:
        check_output_dir(output.output_dir)  # before the model loads
    shard = build_shard(kw)
    found = discover([audio for audio, _ in pairs], output_dir=output.output_dir, shard=shard)
    with open_manifest(kw, shard) as manifest:
        return _align(found, pairs, options, align_options, console, kw["quiet"], manifest, shard)


def _align(
    found: Discovery,
    pairs: list[tuple[Path, str]],
    options: RunOptions,
    align_options: AlignOptions,
    console: Console,
    quiet: bool,
    manifest: RunManifest | None,
    shard: Shard | None,
) -> int:

    failed = report_input_errors(found, console, manifest, shard)
    texts: dict[Path, list[str]] = {}
    for audio, text in pairs:
        texts.setdefault(audio, []).append(text)
    work = []
    for item in found.items:
        given = texts.get(item.path, [])
        if len(set(given)) > 1:
            reason = f"listed {len(given)} times with different texts"
            console.error(f"{item.path}: {reason}")
            if manifest is not None:
                manifest.add_input_error(item.path, reason)
            failed += 1
            continue
        work.append((item, given[0]))
    if not work:
        if not failed:
            console.error(
                "nothing to align" if not found.found else f"nothing to align in shard {shard}"
            )
        return EXIT_FAILED if failed or not found.found else 0

    started = time.perf_counter()
    with Aligner(options, align_options, notify=console.info) as aligner:
        return run_files(
            lambda progress: iter_align(work, aligner, progress=progress, stream=sys.stdout),
            console,
            quiet,
            failed,
            started,
            "aligning",
            manifest=manifest,
        )
