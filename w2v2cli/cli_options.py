"""Option groups and helpers shared by the ``w2v2`` commands (transcribe, eval, lm).

Kept apart from ``cli.py`` so command modules can import them without import cycles.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .options import (
    DEFAULT_MODEL,
    DTYPES,
    ChunkOptions,
    DecodeOptions,
    ModelOptions,
    OutputOptions,
    RunOptions,
)

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _stride(value: str | None) -> tuple[float, float] | None:
    if value is None:
        return None
    parts = value.split(",")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not SECONDS or LEFT,RIGHT") from None
    if len(nums) == 1:
        return nums[0], nums[0]
    if len(nums) == 2:
        return nums[0], nums[1]
    raise click.BadParameter(f"{value!r} is not SECONDS or LEFT,RIGHT")


def model_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--model, --device, --dtype, --cache-dir, --revision, --batch-size, chunking."""
    decorators = [
        click.option("-m", "--model", default=DEFAULT_MODEL, show_default=True,
                     help="Hugging Face hub id or local folder of a CTC model."),
        click.option("--device", default="auto", show_default=True,
                     help="auto (CUDA if available), cpu, cuda or cuda:N."),
        click.option("--dtype", type=click.Choice(DTYPES), default="auto", show_default=True,
                     help="Model precision; auto is float16 on CUDA, float32 on CPU."),
        click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path),
                     help="Hugging Face cache folder (default: HF_HOME's)."),
        click.option("--revision", help="Hub revision (branch, tag or commit) of the model."),
        click.option("-b", "--batch-size", type=click.IntRange(min=1),
                     help="Chunks per model call, at most, across files "
                          "[default: 8 on CUDA, 1 on CPU]."),
        click.option("--max-padding", type=click.FloatRange(0, 1), metavar="FRACTION",
                     help="Padding a chunk may add to a batch, as a share of its longest "
                          "chunk [default: 0 on CPU, 1 on CUDA]."),
        click.option("--chunk-length", type=click.FloatRange(min=0, min_open=True),
                     default=ChunkOptions.chunk_length, show_default=True,
                     help="Seconds of audio per chunk for long recordings."),
        click.option("--stride-length", metavar="SECONDS|LEFT,RIGHT",
                     help="Overlap dropped on each side of a chunk [default: 3]."),
    ]
    return functools.reduce(lambda acc, d: d(acc), reversed(decorators), f)


def decode_options(f: Callable[..., Any], *, several: bool = False) -> Callable[..., Any]:
    """Decoder choice and beam-search settings, shared by transcribe and eval.

    ``several=True`` (eval) makes --decoder repeatable: each decoder scores the same logits.
    """
    d = DecodeOptions()
    decoder_help = "auto: beam search when an LM is given or the model ships one."
    if several:
        decoder_help += " Repeat to compare decoders on one model pass."
    decorators = [
        click.option("--decoder", "decoder", type=click.Choice(["auto", "greedy", "beam"]),
                     multiple=several, default=("auto",) if several else "auto",
                     show_default=True, help=decoder_help),
        click.option("--lm", type=click.Path(exists=True, path_type=Path),
                     help="KenLM language model (ARPA or binary) or a language_model/ folder."),
        click.option("--unigrams", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                     help="Unigram list for the LM (default: read from the ARPA file)."),
        click.option("--beam-width", type=click.IntRange(min=1), default=d.beam_width,
                     show_default=True, help="Beams kept by beam search."),
        click.option("--alpha", type=float, help="LM weight [default: model's or 0.5]."),
        click.option("--beta", type=float, help="Word insertion bonus [default: model's or 1.0]."),
        click.option("--beam-prune-logp", type=float, default=d.beam_prune_logp,
                     show_default=True, help="Drop beams this far below the best (log prob)."),
        click.option("--token-min-logp", type=float, default=d.token_min_logp,
                     show_default=True, help="Skip tokens below this log prob in a frame."),
        click.option("--hotword", "hotwords", multiple=True,
                     help="Word or phrase to favour in beam search (repeatable)."),
        click.option("--hotword-weight", type=float, default=d.hotword_weight,
                     show_default=True, help="Score bonus for hotwords."),
        click.option("--decode-workers", type=click.IntRange(min=0),
                     help="Beam-search worker processes [default: CPU cores; 0: in-process]."),
    ]
    return functools.reduce(lambda acc, d: d(acc), reversed(decorators), f)


def build_model_options(kw: dict[str, Any]) -> ModelOptions:
    return ModelOptions(
        model=kw["model"], device=kw["device"], dtype=kw["dtype"],
        cache_dir=kw["cache_dir"], revision=kw["revision"],
    )


def build_chunk_options(kw: dict[str, Any]) -> ChunkOptions:
    stride = _stride(kw["stride_length"])
    if stride is None:
        return ChunkOptions(chunk_length=kw["chunk_length"])
    return ChunkOptions(chunk_length=kw["chunk_length"], stride_left=stride[0],
                        stride_right=stride[1])


def build_decode_options(kw: dict[str, Any], decoder: str | None = None) -> DecodeOptions:
    return DecodeOptions(
        decoder=decoder or kw["decoder"], lm=kw["lm"], unigrams=kw["unigrams"],
        beam_width=kw["beam_width"], alpha=kw["alpha"], beta=kw["beta"],
        beam_prune_logp=kw["beam_prune_logp"], token_min_logp=kw["token_min_logp"],
        hotwords=tuple(kw["hotwords"]), hotword_weight=kw["hotword_weight"],
        workers=kw["decode_workers"],
    )


class FatalError(click.ClickException):
    """An error that stops the whole run before any file (bad model, bad options): exit 2."""

    exit_code = EXIT_USAGE


class Console:
    """Messages to stderr; stdout is kept for results."""

    def __init__(self, quiet: bool) -> None:
        from rich.console import Console as RichConsole

        self.quiet = quiet
        self.err = RichConsole(stderr=True, highlight=False)

    def error(self, text: str) -> None:
        self.err.print(f"[bold red]error:[/] {text}", soft_wrap=True, markup=True)

    def info(self, text: str) -> None:
        if not self.quiet:
            self.err.print(text, soft_wrap=True)


def build_run_options(
    kw: dict[str, Any], decoding: DecodeOptions, output: OutputOptions | None = None
) -> RunOptions:
    """The model, chunking and batching options every command shares, plus ``decoding``."""
    return RunOptions(
        model=build_model_options(kw),
        chunking=build_chunk_options(kw),
        decoding=decoding,
        output=output or OutputOptions(),
        batch_size=kw["batch_size"],
        max_padding=kw["max_padding"],
    )
