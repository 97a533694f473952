"""``w2v2 lm build`` and ``w2v2 lm tune``: arguments → ``lm.build_lm`` or
``evaluation.tune_pairs`` → a summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console as RichConsole

from ..decoding.beam import beam_settings
from ..errors import ConfigError
from ..evaluation import compute_emissions, load_manifest, report_format, tune_report, write_report
from ..evaluation.html_report import write_tune_page
from ..evaluation.tune import TuneRow, grid_pairs, grid_values, random_pairs, tune_pairs
from ..lm import attrs_path, build_lm, update_lm_attrs
from ..lm.build import KENLM_MAX_ORDER
from ..models import load_vocabulary, resolve_model
from ..options import DecodeOptions
from ..pipeline import NullProgress
from .errors import EXIT_FAILED, Console, handle_errors
from .eval import check_outputs, check_reports, emission_source, run_about
from .options import (
    model_options,
    no_normalize_option,
    parse_numbers,
    parse_range,
    quiet_option,
    report_option,
)
from .progress import RichProgress
from .render import results_table


@click.group("lm")
def lm_group() -> None:
    """Build KenLM n-gram language models for beam search and tune their weights."""


@lm_group.command("build")
@click.argument(
    "text_files",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="LM file to write: binary (.bin), or ARPA with --arpa-only. "
    "Its word list is written beside it as NAME.unigrams.txt.",
)
@click.option(
    "--order",
    type=click.IntRange(1, KENLM_MAX_ORDER),
    default=5,
    show_default=True,
    help="N-gram order (longest word sequence the LM scores).",
)
@click.option(
    "--prune",
    metavar="COUNTS",
    help="lmplz pruning thresholds per order, e.g. '0 1 1' or '0,1,1': drop n-grams seen "
    "at most that many times (non-decreasing).",
)
@click.option(
    "--model",
    metavar="MODEL_OR_DIR",
    help="Model (hub name, folder or checkpoint file) whose alphabet and letter case the text "
    "is normalised for; only its tokenizer is loaded. Without it the text keeps its case.",
)
@click.option(
    "--language",
    metavar="CODE",
    help="With --model: which vocabulary of a model with one per language (MMS).",
)
@click.option(
    "--arpa-only",
    is_flag=True,
    help="Write the ARPA text file and skip build_binary (slower to load, larger).",
)
@click.option(
    "--save-model-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Also write DIR/language_model/ and DIR/alphabet.json (the layout of transformers' "
    "Wav2Vec2ProcessorWithLM), e.g. into the model's own folder.",
)
@click.option(
    "--memory",
    metavar="SIZE",
    help="Memory for lmplz and build_binary sorting, e.g. 2G or 20% [default: 10x the text, "
    "at least 64M, at most 20% of RAM].",
)
@click.option(
    "--tmp-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    help="Folder for temporary files (the normalised text, lmplz's sort files).",
)
@handle_errors
def build_command(
    text_files: tuple[Path, ...],
    output: Path,
    order: int,
    prune: str | None,
    model: str | None,
    language: str | None,
    arpa_only: bool,
    save_model_dir: Path | None,
    memory: str | None,
    tmp_dir: Path | None,
) -> int:
    """Build a KenLM model from TEXT_FILES (UTF-8 text, one sentence per line; .gz, .bz2
    and .xz are read too).

    With --model, the text is normalised for that model first: folded to its case,
    punctuation removed (in-word apostrophes kept when the model has them), accents it
    lacks stripped, and words it cannot spell (numbers, other scripts) dropped.
    """
    if language and not model:
        raise ConfigError("--language chooses a vocabulary of --model; give the model too")
    vocab = load_vocabulary(resolve_model(model, tokenizer_only=True), language) if model else None
    result = build_lm(
        list(text_files),
        output,
        order,
        parse_numbers(prune, "--prune", kind=int),
        vocab,
        binary=not arpa_only,
        model_dir_out=save_model_dir,
        memory=memory,
        tmp_dir=tmp_dir,
    )
    counts = "/".join(f"{n:,}" for n in result.ngram_counts)
    echo = click.echo
    echo(f"Built {result.lm_path} ({result.format}, order {result.order})", err=True)
    echo(f"  n-grams per order: {counts}", err=True)
    echo(
        f"  text: {result.lines:,} lines, {result.words:,} words kept, "
        f"{result.dropped_words:,} dropped (numbers, symbols or letters the model lacks)",
        err=True,
    )
    if vocab is not None:
        echo(f"  case: folded to the model's ({result.case})", err=True)
    echo(f"  unigrams: {result.unigrams_path}", err=True)
    if result.language_model_dir is not None:
        echo(f"  language model folder: {result.language_model_dir}", err=True)
    echo(f"  took {result.seconds:.1f} s", err=True)
    return 0


# --------------------------------------------------------------------------- tune


def _search_pairs(kw: dict[str, Any], ctx: click.Context) -> list[tuple[float, float]]:
    """The (alpha, beta) pairs the options ask for: a grid (ranges, or explicit value
    lists per axis) or seeded random samples from the ranges."""
    alpha_range = parse_range(kw["alpha_range"], "--alpha-range")
    beta_range = parse_range(kw["beta_range"], "--beta-range")
    alphas = parse_numbers(kw["alphas"], "--alphas")
    betas = parse_numbers(kw["betas"], "--betas")

    def given(name: str) -> bool:
        return ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE

    # Options that would be ignored are refused instead: a search that silently differs
    # from what was asked wastes a long run.
    if kw["random_samples"] is not None:
        if alphas is not None or betas is not None:
            raise click.UsageError("--random samples the ranges; it cannot take --alphas/--betas")
        if given("grid"):
            raise click.UsageError("choose --grid or --random, not both")
        return random_pairs(alpha_range, beta_range, kw["random_samples"], kw["seed"])
    if given("seed"):
        raise click.UsageError("--seed is for --random")
    if alphas is not None and given("alpha_range"):
        raise click.UsageError("give --alphas or --alpha-range, not both")
    if betas is not None and given("beta_range"):
        raise click.UsageError("give --betas or --beta-range, not both")
    if alphas is not None and betas is not None and given("grid"):
        raise click.UsageError("--grid spaces the ranges; with --alphas and --betas it has no use")
    if alphas is None:
        alphas = grid_values(*alpha_range, kw["grid"])
    if betas is None:
        betas = grid_values(*beta_range, kw["grid"])
    return grid_pairs(alphas, betas)


@lm_group.command("tune")
@click.argument("manifest", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--lm",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="KenLM model (ARPA or binary), a language_model/ folder or a model folder with one.",
)
@click.option(
    "--unigrams",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Unigram list for the LM (default: the folder's unigrams.txt, the LM's "
    "NAME.unigrams.txt, or the ARPA's 1-grams).",
)
@model_options
@click.option(
    "--alpha-range",
    metavar="LOW,HIGH",
    default="0,2",
    show_default=True,
    help="Range of the LM weight alpha searched by --grid or --random.",
)
@click.option(
    "--beta-range",
    metavar="LOW,HIGH",
    default="-1,3",
    show_default=True,
    help="Range of the word bonus beta searched by --grid or --random.",
)
@click.option(
    "--grid",
    type=click.IntRange(min=2),
    default=5,
    show_default=True,
    metavar="N",
    help="Grid search: N evenly spaced values per range, every combination tried.",
)
@click.option(
    "--random",
    "random_samples",
    type=click.IntRange(min=1),
    metavar="N",
    help="Random search instead of a grid: N pairs drawn uniformly from the ranges.",
)
@click.option(
    "--seed",
    type=int,
    default=0,
    show_default=True,
    help="Seed for --random (the same seed draws the same pairs).",
)
@click.option(
    "--alphas",
    metavar="A,B,...",
    help="Exact alpha values for the grid, instead of --alpha-range.",
)
@click.option(
    "--betas",
    metavar="A,B,...",
    help="Exact beta values for the grid, instead of --beta-range.",
)
@click.option(
    "--beam-width",
    type=click.IntRange(min=1),
    default=DecodeOptions.beam_width,
    show_default=True,
    help="Beams kept; tune with the width you will decode with.",
)
@click.option(
    "--decode-workers",
    type=click.IntRange(min=0),
    help="Processes that decode (alpha, beta) pairs in parallel [default: CPU cores; "
    "0: in-process].",
)
@click.option(
    "--save-logits",
    type=click.Path(file_okay=False, path_type=Path),
    help="Keep the model's log-probabilities in DIR for later runs.",
)
@click.option(
    "--load-logits",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Tune on log-probabilities saved by --save-logits (eval or tune); the model is not run.",
)
@click.option(
    "--write-attrs",
    metavar="LANGUAGE_MODEL_DIR",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Write the best alpha and beta into this language_model/ folder's attrs.json (or "
    "a model folder's), keeping its other settings.",
)
@no_normalize_option
@report_option(
    "Every pair's scores: .jsonl, .csv or .tsv, or a page with a heat map of WER over "
    "alpha and beta: .html. Repeatable."
)
@quiet_option("No progress; the table still prints.")
@click.pass_context
@handle_errors
def tune_command(ctx: click.Context, manifest: Path, **kw: Any) -> int:
    """Find the LM weight (alpha) and word bonus (beta) with the lowest WER on MANIFEST.

    The model runs once (or not at all with --load-logits); beam search then decodes the
    same log-probabilities with every (alpha, beta) pair, in --decode-workers processes
    that each load the LM once. Prints every pair sorted by WER, then the best one.
    """
    console = Console(kw["quiet"])
    pairs = _search_pairs(kw, ctx)
    if kw["write_attrs"] is not None:
        attrs_path(kw["write_attrs"])  # a bad target fails now, not after the search
    check_reports(kw["report"])
    check_outputs(kw, ("report",))
    decoding = DecodeOptions(
        decoder="beam",
        lm=kw["lm"],
        unigrams=kw["unigrams"],
        beam_width=kw["beam_width"],
        workers=kw["decode_workers"],
    )
    loaded_manifest = load_manifest(manifest)
    with emission_source(kw, console) as source:
        settings = beam_settings(source.vocabulary, decoding)  # before the model runs
        total = sum(e.duration or 0.0 for e in loaded_manifest.entries) or None
        progress = NullProgress() if kw["quiet"] else RichProgress(console.err, "computing")
        with progress:
            progress.start(len(loaded_manifest.entries), total)
            ok, failed, _seconds = compute_emissions(
                loaded_manifest,
                source,
                save_logits=kw["save_logits"],
                on_audio=progress.advance_audio,
            )
        vocabulary = source.vocabulary
    for entry, reason in failed:
        console.error(f"{entry.audio}: {reason}")
    if not ok:
        raise ConfigError("no utterance could be read; nothing to tune on")
    console.info(
        f"tuning {len(pairs)} (alpha, beta) pairs on {len(ok)} utterances with "
        f"beam width {kw['beam_width']}"
    )
    done = [0]

    def report(row: TuneRow) -> None:
        done[0] += 1
        console.info(
            f"[{done[0]}/{len(pairs)}] alpha {row.alpha:g}  beta {row.beta:g}  "
            f"WER {100 * row.wer:.2f}%  CER {100 * row.cer:.2f}%"
        )

    result = tune_pairs(
        [(entry.text, em) for entry, em in ok],
        vocabulary,
        settings,
        pairs,
        workers=kw["decode_workers"],
        normalize=not kw["no_normalize"],
        ids=[loaded_manifest.entry_id(entry) for entry, _ in ok],
        on_result=report,
    )
    out = RichConsole()  # the table and the best pair are the result: stdout
    out.print(results_table(result, title=f"{manifest.name or manifest}: alpha and beta"))
    best = result.best
    out.print(
        f"best: --alpha {best.alpha:g} --beta {best.beta:g}  "
        f"(WER {100 * best.wer:.2f}%, CER {100 * best.cer:.2f}%)",
        highlight=False,
    )
    if kw["write_attrs"] is not None:
        written = update_lm_attrs(kw["write_attrs"], best.alpha, best.beta)
        console.info(f"alpha {best.alpha:g} and beta {best.beta:g} written to {written}")
    if kw["report"]:
        about = run_about(
            manifest,
            source.model_name,
            kw,
            ("LM", str(kw["lm"])),
            ("beam width", str(kw["beam_width"])),
        )
        pairs_report = tune_report(
            result, title=f"w2v2 lm tune: {manifest.name or manifest}", about=about
        )
        for path in kw["report"]:
            if report_format(path) == "html":
                write_tune_page(path, pairs_report)
            else:
                write_report(path, pairs_report.rows)
            console.info(f"report written to {path}")
    console.info(
        f"{len(result.rows)} pairs, {result.utterances} utterances in {result.seconds:.1f} s "
        f"({result.workers or 'no'} worker processes)"
    )
    return EXIT_FAILED if failed else 0
