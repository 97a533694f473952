"""Option groups and parameter parsing shared by the commands.

Each group is a decorator, so ``transcribe``, ``eval`` and ``lm tune`` offer the same
model, chunking, batching and decoding options with the same help; ``builders.py`` turns
the parsed values into the library's frozen option records (which validate themselves).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from ..options import (
    BACKENDS,
    CASE_MODES,
    DECODERS,
    DEFAULT_MODEL,
    DTYPES,
    FORMATS,
    INT8_METHODS,
    ChunkOptions,
    DecodeOptions,
    SubtitleOptions,
    VadOptions,
)


def _apply(f: Callable[..., Any], decorators: list[Callable[..., Any]]) -> Callable[..., Any]:
    return functools.reduce(lambda acc, d: d(acc), reversed(decorators), f)


def parse_numbers(value: str | None, name: str, *, kind: type = float) -> list[Any] | None:
    """``"0.3,0.5 1"`` → ``[0.3, 0.5, 1.0]`` (commas or spaces); None for no value."""
    if value is None or not value.strip():
        return None
    parts = [p for p in re.split(r"[\s,]+", value.strip()) if p]
    try:
        return [kind(p) for p in parts]
    except ValueError:
        example = "'0 1 1' or '0,1,1'" if kind is int else "'0.3,0.5,1'"
        raise click.BadParameter(
            f"expected numbers like {example}, got {value!r}", param_hint=name
        ) from None


def parse_range(value: str, name: str) -> tuple[float, float]:
    """``"LOW,HIGH"`` (or ``LOW:HIGH``) → ``(low, high)`` with ``low <= high``."""
    parts = [p for p in re.split(r"[\s,:]+", value.strip()) if p]
    try:
        low, high = (float(p) for p in parts)
    except ValueError:
        raise click.BadParameter(
            f"expected LOW,HIGH like '0,2', got {value!r}", param_hint=name
        ) from None
    if low > high:
        raise click.BadParameter(f"{value!r}: LOW is above HIGH", param_hint=name)
    return low, high


def parse_stride(value: str | None) -> tuple[float, float] | None:
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
    """--model, --device, --dtype, --backend, --threads, --cache-dir, --revision,
    --language, --int8, --calibration, --batch-size, --max-padding, chunking, --vad."""
    v = VadOptions()
    decorators = [
        click.option(
            "-m",
            "--model",
            default=DEFAULT_MODEL,
            show_default=True,
            help="CTC model: a Hugging Face hub id, a local model folder, a checkpoint file "
            "(.pt), or an OpenVINO IR (.xml) or ONNX file.",
        ),
        click.option(
            "--device",
            default="auto",
            show_default=True,
            help="auto (CUDA if available), cpu, cuda or cuda:N.",
        ),
        click.option(
            "--dtype",
            type=click.Choice(DTYPES),
            default="auto",
            show_default=True,
            help="Model precision; auto is float16 on CUDA, float32 on CPU; "
            "bfloat16 (CPUs with native bf16) and int8 (OpenVINO) are faster "
            "and slightly less accurate.",
        ),
        click.option(
            "--backend",
            type=click.Choice(BACKENDS),
            default="auto",
            show_default=True,
            help="What runs the model: auto is OpenVINO on CPU when installed "
            "(pip install 'w2v2cli[openvino]'), else torch.",
        ),
        click.option(
            "--threads",
            type=click.IntRange(min=1),
            help="CPU threads for the model [default: the cores this process may use].",
        ),
        click.option(
            "--int8",
            "int8",
            type=click.Choice(INT8_METHODS),
            default="auto",
            show_default=True,
            help="How --dtype int8 quantizes: weights (weights only), full "
            "(weights and activations, calibrated on audio); auto: full on "
            "CPUs with VNNI, AMX or AVX-512 or with --calibration.",
        ),
        click.option(
            "--calibration",
            type=click.Path(exists=True, path_type=Path),
            help="Audio to calibrate full int8 quantization on: a file, a folder or "
            "a manifest [default: the first chunks of the input].",
        ),
        click.option(
            "--cache-dir",
            type=click.Path(file_okay=False, path_type=Path),
            help="Hugging Face cache folder (default: HF_HOME's).",
        ),
        click.option("--revision", help="Hub revision (branch, tag or commit) of the model."),
        click.option(
            "--language",
            metavar="CODE",
            help="Language of a model with one vocabulary and adapter per language "
            "(MMS), e.g. fra; `w2v2 languages MODEL` lists them.",
        ),
        click.option(
            "-b",
            "--batch-size",
            type=click.IntRange(min=1),
            help="Chunks per model call, at most, across files [default: 8 on CUDA, 1 on CPU].",
        ),
        click.option(
            "--max-padding",
            type=click.FloatRange(0, 1),
            metavar="FRACTION",
            help="Padding a chunk may add to a batch, as a share of its longest "
            "chunk [default: 0 on CPU, 1 on CUDA].",
        ),
        click.option(
            "--read-workers",
            type=click.IntRange(min=0),
            help="Processes that decode audio files ahead of the model [default: a third "
            "of the usable cores from 4 on, at least 1 on CUDA, else none]; 0: a thread.",
        ),
        click.option(
            "--chunk-length",
            type=click.FloatRange(min=0, min_open=True),
            default=ChunkOptions.chunk_length,
            show_default=True,
            help="Seconds of audio per chunk for long recordings.",
        ),
        click.option(
            "--stride-length",
            metavar="SECONDS|LEFT,RIGHT",
            help="Overlap dropped on each side of a chunk [default: 3].",
        ),
        click.option(
            "--vad",
            is_flag=True,
            help="Send only speech to the model, cut at pauses (Silero VAD; pip "
            "install 'w2v2cli[vad]'): faster on recordings with long pauses.",
        ),
        click.option(
            "--vad-threshold",
            type=click.FloatRange(0, 1, min_open=True, max_open=True),
            help=f"Speech probability above which audio is speech, with --vad "
            f"[default: {v.threshold:g}].",
        ),
        click.option(
            "--vad-min-silence",
            type=click.FloatRange(min=0),
            metavar="SECONDS",
            help=f"Shortest pause that ends a stretch of speech, with --vad "
            f"[default: {v.min_silence:g}].",
        ),
        click.option(
            "--vad-padding",
            type=click.FloatRange(min=0),
            metavar="SECONDS",
            help=f"Audio kept on each side of every stretch of speech, with --vad "
            f"[default: {v.padding:g}].",
        ),
    ]
    return _apply(f, decorators)


def decode_options(f: Callable[..., Any], *, several: bool = False) -> Callable[..., Any]:
    """Decoder choice and beam-search settings, shared by transcribe and eval.

    ``several=True`` (eval) makes --decoder repeatable: each decoder scores the same logits.
    """
    d = DecodeOptions()
    decoder_help = "auto: beam search when an LM is given or the model ships one."
    if several:
        decoder_help += " Repeat to compare decoders on one model pass."
    decorators = [
        click.option(
            "--decoder",
            "decoder",
            type=click.Choice(DECODERS),
            multiple=several,
            default=("auto",) if several else "auto",
            show_default=True,
            help=decoder_help,
        ),
        click.option(
            "--lm",
            type=click.Path(exists=True, path_type=Path),
            help="KenLM language model (ARPA or binary) or a language_model/ folder.",
        ),
        click.option(
            "--unigrams",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            help="Unigram list for the LM (default: the folder's unigrams.txt, the "
            "LM's NAME.unigrams.txt, or the ARPA's 1-grams).",
        ),
        click.option(
            "--beam-width",
            type=click.IntRange(min=1),
            default=d.beam_width,
            show_default=True,
            help="Beams kept by beam search.",
        ),
        click.option("--alpha", type=float, help="LM weight [default: model's or 0.5]."),
        click.option("--beta", type=float, help="Word insertion bonus [default: model's or 1.0]."),
        click.option(
            "--beam-prune-logp",
            type=float,
            default=d.beam_prune_logp,
            show_default=True,
            help="Drop beams this far below the best (log prob).",
        ),
        click.option(
            "--token-min-logp",
            type=float,
            default=d.token_min_logp,
            show_default=True,
            help="Skip tokens below this log prob in a frame.",
        ),
        click.option(
            "--hotword",
            "hotwords",
            multiple=True,
            help="Word or phrase to favour in beam search (repeatable).",
        ),
        click.option(
            "--hotword-weight",
            type=float,
            default=d.hotword_weight,
            show_default=True,
            help="Score bonus for hotwords.",
        ),
        click.option(
            "--decode-workers",
            type=click.IntRange(min=0),
            help="Decoding processes [default: the usable CPU cores; in transcribe with "
            "greedy decoding two fewer from 4 cores on, else none, at least 1 on CUDA]; in "
            "transcribe they also format and write each file's outputs; 0: all in this "
            "process.",
        ),
    ]
    return _apply(f, decorators)


def _formats_help(defaults: tuple[tuple[str, ...], tuple[str, ...]]) -> str:
    files, stdout = (" and ".join(d) for d in defaults)
    default = files if files == stdout else f"{files}; {stdout} with --stdout"
    return f"Output format (repeatable): txt, json, srt, vtt, tsv or all [default: {default}]."


def output_options(
    defaults: tuple[tuple[str, ...], tuple[str, ...]],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Where and how results are written: -o, -f, --stdout, --overwrite, --case and the
    subtitle limits (``transcribe`` and ``align``). ``defaults`` are the formats written
    without -f, to files and to stdout."""
    s = SubtitleOptions()
    decorators = [
        click.option(
            "-o",
            "--output-dir",
            metavar="DIR",
            help="Write outputs under DIR, mirroring the input tree ('-' for "
            "stdout). Default: next to each input file.",
        ),
        click.option(
            "-f",
            "--format",
            "formats",
            multiple=True,
            type=click.Choice([*FORMATS, "all"]),
            help=_formats_help(defaults),
        ),
        click.option("--stdout", is_flag=True, help="Write results to stdout instead of files."),
        click.option("--overwrite", is_flag=True, help="Redo files whose outputs already exist."),
        click.option(
            "--case",
            type=click.Choice(CASE_MODES),
            default="keep",
            show_default=True,
            help="Letter case of the written text.",
        ),
        click.option(
            "--max-line-chars",
            type=click.IntRange(min=1),
            default=s.max_line_chars,
            show_default=True,
            help="Subtitle line length limit.",
        ),
        click.option(
            "--max-lines",
            type=click.IntRange(min=1),
            default=s.max_lines,
            show_default=True,
            help="Lines per subtitle cue.",
        ),
        click.option(
            "--max-cue-duration",
            type=click.FloatRange(min=0, min_open=True),
            default=s.max_cue_duration,
            show_default=True,
            help="Longest subtitle cue in seconds.",
        ),
        click.option(
            "--pause",
            type=click.FloatRange(min=0, min_open=True),
            default=s.pause,
            show_default=True,
            help="A silence this long (seconds) between words starts a new cue.",
        ),
        click.option(
            "--min-cue-duration",
            type=click.FloatRange(min=0),
            default=s.min_cue_duration,
            show_default=True,
            help="Shortest display time of a cue in seconds.",
        ),
    ]
    return lambda f: _apply(f, decorators)


def scale_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Runs over many machines: --shard and --manifest-out (``transcribe`` and ``align``)."""
    return _apply(
        f,
        [
            click.option(
                "--shard",
                metavar="I/N",
                help="Process only shard I of N (1-based): each input belongs to exactly "
                "one shard, by a stable hash of its path under the input root.",
            ),
            click.option(
                "--manifest-out",
                type=click.Path(dir_okay=False, path_type=Path),
                metavar="FILE.jsonl",
                help="Append one JSON line per input as it finishes (path, status, "
                "duration, text, outputs, error).",
            ),
        ],
    )


def no_normalize_option(f: Callable[..., Any]) -> Callable[..., Any]:
    """``--no-normalize``: score raw text (``eval`` and ``lm tune`` alike)."""
    return click.option(
        "--no-normalize",
        is_flag=True,
        help="Score raw text (whitespace split only): no case folding or punctuation removal.",
    )(f)


def report_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--report FILE``, repeatable; the extension picks the format (``eval``, ``lm tune``)."""
    return click.option(
        "--report",
        type=click.Path(dir_okay=False, path_type=Path),
        multiple=True,
        metavar="FILE",
        help=help_text,
    )


def quiet_option(help_text: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``-q/--quiet``: no progress or summary; error lines always print."""
    return click.option("-q", "--quiet", is_flag=True, help=help_text)
