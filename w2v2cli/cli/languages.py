"""``w2v2 languages MODEL``: the codes ``--language`` accepts for an MMS-style model."""

from __future__ import annotations

from pathlib import Path

import click

from ..models import locate_model, model_languages
from .errors import Console, handle_errors


@click.command("languages")
@click.argument("model")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Hugging Face cache folder (default: HF_HOME's).",
)
@click.option("--revision", help="Hub revision (branch, tag or commit) of the model.")
@click.option("-q", "--quiet", is_flag=True, help="Only the codes, no count.")
@handle_errors
def languages_command(model: str, cache_dir: Path | None, revision: str | None, quiet: bool) -> int:
    """List the language codes of MODEL (one vocabulary and adapter per language, as in
    facebook/mms-1b-all), one per line, for --language.

    Only the model's vocab.json is read (downloaded alone for a hub id not yet cached).
    """
    codes = model_languages(locate_model(model, cache_dir, revision, tokenizer_only=True))
    for code in codes:
        click.echo(code)
    Console(quiet).info(f"{len(codes)} languages")
    return 0
