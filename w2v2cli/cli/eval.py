"""``w2v2 eval`` and what it shares with ``w2v2 lm tune``: where emissions come from."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console as RichConsole

from .. import __version__
from ..decoding import make_decoders
from ..evaluation import (
    LogitsStore,
    ModelSource,
    SavedSource,
    eval_report,
    evaluate,
    load_manifest,
    report_format,
    worst,
    write_report,
)
from ..evaluation.html_report import write_eval_page
from ..evaluation.reports import About
from ..fsutil import check_output_dir, check_output_file
from ..inference import Engine
from ..options import DecodeOptions
from ..pipeline import NullProgress
from .builders import build_decode_options, build_run_options
from .errors import EXIT_FAILED, Console, handle_errors
from .options import (
    decode_options,
    model_options,
    no_normalize_option,
    quiet_option,
    report_option,
)
from .progress import RichProgress
from .render import SummaryRow, alignment_text, summary_table


@contextmanager
def emission_source(kw: dict[str, Any], console: Console) -> Iterator[Any]:
    """The model (``ModelSource``) or ``--load-logits`` (``SavedSource``), closed on exit."""
    options = build_run_options(kw, DecodeOptions())  # decoders are built by the caller
    if kw["load_logits"] is not None:
        store = LogitsStore.open(kw["load_logits"])
        yield SavedSource(store, kw["cache_dir"], kw["revision"])
        return

    engine = Engine.from_options(options, notify=console.info)
    try:
        yield ModelSource(engine)
    finally:
        engine.close()


def check_outputs(kw: dict[str, Any], files: tuple[str, ...] = ()) -> None:
    """Refuse unwritable output paths before any work (``--save-logits`` and ``files``,
    options of one path or of several)."""
    if kw.get("save_logits") is not None:
        check_output_dir(kw["save_logits"], "logits folder")
    for name in files:
        value = kw.get(name)
        for path in value if isinstance(value, (tuple, list)) else [value]:
            if path is not None:
                check_output_file(path, name.replace("_", " "))


def check_reports(paths: tuple[Path, ...]) -> None:
    """Each ``--report`` path's format is known (by its extension), before any work."""
    for path in paths:
        report_format(path)


def run_about(manifest: Path, model: str, kw: dict[str, Any], *extra: tuple[str, str]) -> About:
    """What a report page says about the run it comes from."""
    return (
        ("manifest", str(manifest)),
        ("model", model),
        *extra,
        ("normalisation", "off (--no-normalize)" if kw["no_normalize"] else "on"),
        ("written", datetime.now().astimezone().isoformat(timespec="seconds")),
        ("w2v2cli", __version__),
    )


@click.command("eval")
@click.argument("manifest", type=click.Path(exists=True, path_type=Path))
@model_options
@(lambda f: decode_options(f, several=True))
@no_normalize_option
@report_option(
    "Per-utterance report: .jsonl, .csv or .tsv, or a page to look at: .html. "
    "Repeatable: --report r.jsonl --report r.html."
)
@click.option(
    "--show-worst",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Print the N utterances with most word errors, aligned word by word.",
)
@click.option(
    "--fail-above",
    type=click.FloatRange(min=0),
    metavar="WER%",
    help="Exit with status 1 when a decoder's WER (in percent) is above this.",
)
@click.option(
    "--save-logits",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the model's log-probabilities in DIR for later runs.",
)
@click.option(
    "--load-logits",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Decode log-probabilities saved by --save-logits; the model is not run.",
)
@quiet_option("No progress bar; the summary still prints.")
@handle_errors
def eval_command(manifest: Path, **kw: Any) -> int:
    """Score a model and decoders on MANIFEST (JSONL, TSV/CSV, or a folder with .txt files)."""
    console = Console(kw["quiet"])
    names = list(dict.fromkeys(kw["decoder"]))
    decoding = build_decode_options(kw, decoder=names[0])  # validates the beam options
    check_reports(kw["report"])
    check_outputs(kw, ("report",))
    loaded_manifest = load_manifest(manifest)

    with emission_source(kw, console) as source:
        decoders = make_decoders(names, source.vocabulary, decoding, source.model_lm)
        try:
            total = sum(e.duration or 0.0 for e in loaded_manifest.entries) or None
            progress = NullProgress() if kw["quiet"] else RichProgress(console.err, "scoring")
            with progress:
                progress.start(len(loaded_manifest.entries), total)
                result = evaluate(
                    loaded_manifest,
                    decoders,
                    source,
                    normalize=not kw["no_normalize"],
                    save_logits=kw["save_logits"],
                    on_audio=progress.advance_audio,
                )
        finally:
            for d in decoders:
                d.close()

    for entry, reason in result.failed:
        console.error(f"{entry.audio}: {reason}")
    for d in result.decoders:
        for entry, reason in d.failed:
            console.error(f"{entry.audio}: {d.name}: {reason}")
    out = RichConsole()  # the summary is the result of eval: stdout
    rows = [
        SummaryRow(
            d.name,
            d.score,
            result.audio_seconds,
            result.model_seconds + d.decode_seconds,
            failed=len(result.failed) + len(d.failed),
        )
        for d in result.decoders
    ]
    out.print(summary_table(rows, title=manifest.name or str(manifest)))
    if kw["report"]:
        lm = () if kw["lm"] is None else (("LM", str(kw["lm"])),)
        used = ", ".join(d.name for d in result.decoders)
        about = run_about(manifest, source.model_name, kw, ("decoders", used), *lm)
        report = eval_report(result, title=f"w2v2 eval: {manifest.name or manifest}", about=about)
        for path in kw["report"]:
            if report_format(path) == "html":
                write_eval_page(path, report)
            else:
                write_report(path, report.rows)
            console.info(f"report written to {path}")
    if kw["show_worst"]:
        for d in result.decoders:
            out.rule(f"worst {kw['show_worst']}: {d.name}")
            for u in worst(d.utterances, kw["show_worst"]):
                out.print(f"[bold]{u.id}[/]  WER {100 * u.wer:.1f}%")
                out.print(alignment_text(u.ref, u.hyp))
    status = EXIT_FAILED if result.any_failed else 0
    limit = kw["fail_above"]
    if limit is not None:
        for d in result.decoders:
            if 100 * d.score.wer > limit:
                console.error(f"{d.name}: WER {100 * d.score.wer:.2f}% is above {limit:g}%")
                status = EXIT_FAILED
    return status
