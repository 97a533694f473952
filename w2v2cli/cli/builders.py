"""The option-record builders: the values the option groups (``options.py``) parsed →
the library's frozen option records (``w2v2cli.options``), which validate themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..discovery import discover
from ..errors import ConfigError
from ..evaluation import load_manifest
from ..options import (
    ChunkOptions,
    DecodeOptions,
    ModelOptions,
    OutputOptions,
    RunOptions,
    SubtitleOptions,
    VadOptions,
)
from ..output import expand_formats
from ..scale import Shard, parse_shard
from .options import parse_stride


def build_vad_options(kw: dict[str, Any]) -> VadOptions | None:
    """``VadOptions`` for ``--vad`` (None without it); tuning it without ``--vad``, or with
    ``--load-logits`` (the model does not run), is refused rather than ignored."""
    tuned = [
        name
        for name in ("vad_threshold", "vad_min_silence", "vad_padding")
        if kw.get(name) is not None
    ]
    if not kw.get("vad"):
        if tuned:
            flag = "--" + tuned[0].replace("_", "-")
            raise ConfigError(f"{flag} needs --vad")
        return None
    if kw.get("load_logits") is not None:
        raise ConfigError("--vad has no effect with --load-logits (the model does not run)")
    d = VadOptions()
    return VadOptions(
        threshold=d.threshold if kw["vad_threshold"] is None else kw["vad_threshold"],
        min_silence=d.min_silence if kw["vad_min_silence"] is None else kw["vad_min_silence"],
        padding=d.padding if kw["vad_padding"] is None else kw["vad_padding"],
    )


def build_output_options(
    kw: dict[str, Any], defaults: tuple[tuple[str, ...], tuple[str, ...]]
) -> OutputOptions:
    """``OutputOptions`` from the ``output_options`` group; ``defaults`` as there."""
    output_dir = kw["output_dir"]
    stdout = kw["stdout"] or output_dir == "-"
    formats = expand_formats(kw["formats"] or defaults[1 if stdout else 0])
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


def build_shard(kw: dict[str, Any]) -> Shard | None:
    """The ``--shard`` option as a ``Shard`` (None without it)."""
    return parse_shard(kw["shard"]) if kw.get("shard") else None


def build_model_options(kw: dict[str, Any]) -> ModelOptions:
    return ModelOptions(
        model=kw["model"],
        device=kw["device"],
        dtype=kw["dtype"],
        cache_dir=kw["cache_dir"],
        revision=kw["revision"],
        backend=kw["backend"],
        threads=kw["threads"],
        language=kw["language"],
        int8=kw["int8"],
        calibration=calibration_files(kw["calibration"]),
    )


MANIFEST_SUFFIXES = (".jsonl", ".json", ".csv", ".tsv")


def calibration_files(path: Path | None) -> tuple[Path, ...]:
    """The audio files ``--calibration PATH`` names: a manifest's, a folder's or one file."""
    if path is None:
        return ()
    if path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
        return tuple(entry.audio for entry in load_manifest(path))

    found = discover([path])
    if found.errors:
        bad, reason = found.errors[0]
        raise ConfigError(f"--calibration: {bad}: {reason}")
    if not found.items:
        raise ConfigError(f"--calibration: no audio files in {path}")
    return tuple(item.path for item in found.items)


def build_chunk_options(kw: dict[str, Any]) -> ChunkOptions:
    stride = parse_stride(kw["stride_length"])
    if stride is None:
        return ChunkOptions(chunk_length=kw["chunk_length"])
    return ChunkOptions(
        chunk_length=kw["chunk_length"], stride_left=stride[0], stride_right=stride[1]
    )


def build_decode_options(kw: dict[str, Any], decoder: str | None = None) -> DecodeOptions:
    return DecodeOptions(
        decoder=decoder or kw["decoder"],
        lm=kw["lm"],
        unigrams=kw["unigrams"],
        beam_width=kw["beam_width"],
        alpha=kw["alpha"],
        beta=kw["beta"],
        beam_prune_logp=kw["beam_prune_logp"],
        token_min_logp=kw["token_min_logp"],
        hotwords=tuple(kw["hotwords"]),
        hotword_weight=kw["hotword_weight"],
        workers=kw["decode_workers"],
    )


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
        vad=build_vad_options(kw),
        read_workers=kw["read_workers"],
    )
