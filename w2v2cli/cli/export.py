"""``w2v2 export``: a model as an OpenVINO folder that ``-m`` accepts on any machine."""

from __future__ import annotations

from pathlib import Path

import click

from ..inference.export import export
from ..options import DEFAULT_MODEL, INT8_METHODS, ModelOptions
from .builders import calibration_files
from .errors import Console, handle_errors


@click.command("export")
@click.argument("model", default=DEFAULT_MODEL, required=False)
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to create with the OpenVINO model, its config, tokenizer and "
    "feature extractor (and its language_model/ when it has one).",
)
@click.option(
    "--dtype",
    type=click.Choice(["float32", "int8"]),
    default="float32",
    show_default=True,
    help="Precision of the exported model; int8 compresses the weights.",
)
@click.option(
    "--int8",
    "int8",
    type=click.Choice(INT8_METHODS),
    default="auto",
    show_default=True,
    help="With --dtype int8: weights (weight-only compression) or full (weights and "
    "activations, calibrated on --calibration audio); auto: full when "
    "--calibration is given.",
)
@click.option(
    "--calibration",
    type=click.Path(exists=True, path_type=Path),
    help="Audio to calibrate full int8 quantization on: a file, a folder or a manifest.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Hugging Face cache folder (default: HF_HOME's).",
)
@click.option("--revision", help="Hub revision (branch, tag or commit) of the model.")
@click.option("-q", "--quiet", is_flag=True, help="No progress messages.")
@handle_errors
def export_command(
    model: str,
    output: Path,
    dtype: str,
    int8: str,
    calibration: Path | None,
    cache_dir: Path | None,
    revision: str | None,
    quiet: bool,
) -> int:
    """Convert MODEL (hub id or folder) to OpenVINO and write it to a folder.

    Run the folder with `w2v2 transcribe -m FOLDER` on any machine with the OpenVINO extra;
    no conversion happens there, and the torch weights are never loaded.
    """
    console = Console(quiet)
    options = ModelOptions(
        model=model,
        dtype=dtype,
        cache_dir=cache_dir,
        revision=revision,
        backend="openvino",
        device="cpu",
        int8=int8,
        calibration=calibration_files(calibration),
    )
    folder = export(options, output, console.info)
    console.info(f"exported {model} ({dtype}) to {folder}")
    return 0
