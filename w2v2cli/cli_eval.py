"""``w2v2 eval``: WER/CER of a model and decoders on a labelled manifest."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import click

from .cli_options import (
    EXIT_FAILED,
    Console,
    FatalError,
    build_decode_options,
    build_run_options,
    decode_options,
    model_options,
)
from .errors import ConfigError, W2V2Error


@click.command("eval")
@click.argument("manifest", type=click.Path(exists=True, path_type=Path))
@model_options
@(lambda f: decode_options(f, several=True))
@click.option("--no-normalize", is_flag=True,
              help="Score raw text (whitespace split only): no case folding or punctuation "
                   "removal.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path),
              help="Per-utterance report: .jsonl, .csv or .tsv.")
@click.option("--show-worst", type=click.IntRange(min=0), default=0, metavar="N",
              help="Print the N utterances with most word errors, aligned word by word.")
@click.option("--fail-above", type=click.FloatRange(min=0), metavar="WER%",
              help="Exit with status 1 when a decoder's WER (in percent) is above this.")
@click.option("--save-logits", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the model's log-probabilities in DIR for later runs.")
@click.option("--load-logits", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="Decode log-probabilities saved by --save-logits; the model is not run.")
@click.option("-q", "--quiet", is_flag=True, help="No progress bar; the summary still prints.")
def eval_command(manifest: Path, **kw: Any) -> None:
    """Score a model and decoders on MANIFEST (JSONL, TSV/CSV, or a folder with .txt files)."""
    from rich.console import Console as RichConsole

    from .evaluate import evaluate, load_logits_meta
    from .manifest import load_manifest
    from .metrics import SummaryRow, alignment_text, report_format, summary_table, worst
    from .pipeline import Transcriber, make_decoder
    from .progress import NullProgress, RichProgress

    console = Console(kw["quiet"])
    names = list(dict.fromkeys(kw["decoder"]))
    try:
        if kw["lm"] is not None and all(name == "greedy" for name in names):
            raise ConfigError("--lm needs beam search; it cannot be used with --decoder greedy")
        if kw["report"] is not None:
            report_format(kw["report"])
        run_options = build_run_options(kw, build_decode_options(kw, decoder=names[0]))
        loaded_manifest = load_manifest(manifest)
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    except W2V2Error as exc:
        raise FatalError(str(exc)) from None

    progress = NullProgress() if kw["quiet"] else RichProgress()
    transcriber = None
    decoders = []
    from .decoders import GreedyDecoder

    try:
        if kw["load_logits"] is not None:
            _model, vocabulary = load_logits_meta(kw["load_logits"])
            for name in names:
                opts = dataclasses.replace(run_options.decoding, decoder=name)
                if name == "greedy" or (name == "auto" and opts.lm is None):
                    decoders.append(GreedyDecoder(vocabulary))
                else:
                    from .beam import BeamDecoder

                    decoders.append(BeamDecoder(vocabulary, opts))
        else:
            transcriber = Transcriber(run_options)
            for name in names:
                opts = dataclasses.replace(run_options.decoding, decoder=name)
                if name == "greedy":
                    # --lm is for the beam decoders this greedy baseline is compared with
                    # (an --lm with only greedy decoders was refused above).
                    decoders.append(GreedyDecoder(transcriber.loaded.vocabulary))
                else:
                    decoders.append(make_decoder(opts, transcriber.loaded, run_options.model))
        total = sum(e.duration or 0.0 for e in loaded_manifest.entries) or None
        progress.start(len(loaded_manifest.entries), total)
        result = evaluate(
            loaded_manifest,
            decoders,
            transcriber=transcriber,
            normalize=not kw["no_normalize"],
            load_logits=kw["load_logits"],
            save_logits=kw["save_logits"],
            on_audio=progress.advance_audio,
        )
    except ConfigError as exc:
        progress.close()
        raise click.UsageError(str(exc)) from None
    except W2V2Error as exc:
        progress.close()
        raise FatalError(str(exc)) from None
    finally:
        for d in decoders:
            d.close()
    progress.close()

    for entry, reason in result.failed:
        console.error(f"{entry.audio}: {reason}")
    out = RichConsole()  # the summary is the result of eval: stdout
    rows = [
        SummaryRow(d.name, d.score, result.audio_seconds, result.model_seconds + d.decode_seconds,
                   failed=len(result.failed))
        for d in result.decoders
    ]
    out.print(summary_table(rows, title=f"{loaded_manifest_name(manifest)}"))
    if kw["report"] is not None:
        from .metrics import write_report

        write_report(
            kw["report"],
            [{"decoder": d.name, **u.to_row()} for d in result.decoders for u in d.utterances],
        )
        console.info(f"report written to {kw['report']}")
    if kw["show_worst"]:
        for d in result.decoders:
            out.rule(f"worst {kw['show_worst']}: {d.name}")
            for u in worst(d.utterances, kw["show_worst"]):
                out.print(f"[bold]{u.id}[/]  WER {100 * u.wer:.1f}%")
                out.print(alignment_text(u.ref, u.hyp))
    status = 0
    if result.failed:
        status = EXIT_FAILED
    limit = kw["fail_above"]
    if limit is not None:
        for d in result.decoders:
            if 100 * d.score.wer > limit:
                console.error(f"{d.name}: WER {100 * d.score.wer:.2f}% is above {limit:g}%")
                status = EXIT_FAILED
    if status:
        sys.exit(status)


def loaded_manifest_name(path: Path) -> str:
    return path.name or str(path)
