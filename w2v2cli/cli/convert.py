"""``w2v2 convert``: an NVIDIA DeepLearningExamples or fairseq checkpoint as a model folder."""

from __future__ import annotations

from pathlib import Path

import click

from ..models.convert import convert_checkpoint
from .errors import Console, handle_errors


@click.command("convert")
@click.argument("checkpoint", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder to create with the converted model, its vocabulary and its feature extractor.",
)
@click.option(
    "--dict",
    "dictionary",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A fairseq checkpoint's letter dictionary [default: dict.ltr.txt beside "
    "the checkpoint]; NVIDIA checkpoints carry theirs.",
)
@click.option("-q", "--quiet", is_flag=True, help="No progress messages.")
@handle_errors
def convert_command(checkpoint: Path, output: Path, dictionary: Path | None, quiet: bool) -> int:
    """Convert CHECKPOINT (NVIDIA DeepLearningExamples or fairseq .pt) to a model folder.

    The folder loads faster than the checkpoint (`w2v2 transcribe -m FOLDER`). Without an
    hourglass encoder it is a plain Wav2Vec2ForCTC folder that transformers loads too.
    """
    console = Console(quiet)
    result = convert_checkpoint(checkpoint, output, dictionary, console.info)
    if result.transformers_loadable:
        what = "a Wav2Vec2ForCTC folder (transformers loads it too)"
    else:
        what = "a wav2vec2 model with an hourglass encoder (w2v2 loads it)"
    console.info(f"wrote {result.folder}: {what}")
    return 0
