"""``w2v2 lm ...``: build KenLM language models for beam search.

Thin, like the rest of the CLI: arguments → ``lm.build_lm`` → a summary on stderr; library
errors become ``click.ClickException``. The main CLI registers ``lm_group``.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from . import lm
from .errors import ModelError, W2V2Error
from .records import Vocabulary


def load_vocabulary(model: str) -> Vocabulary:
    """A model's ``Vocabulary`` from its tokenizer alone: no weights are loaded.

    The one place ``lm build`` turns ``--model`` into an alphabet.
    """
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # pragma: no cover - transformers is a dependency
        raise ModelError(f"transformers is needed to read a model's tokenizer: {exc}") from None
    from .vocab import vocabulary_from_tokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=False)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelError(f"cannot load the tokenizer of {model}: {exc}") from None
    return vocabulary_from_tokenizer(tokenizer)


def _parse_prune(value: str | None) -> list[int] | None:
    if value is None or not value.strip():
        return None
    parts = [p for p in re.split(r"[\s,]+", value.strip()) if p]
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise click.BadParameter(
            f"expected integers like '0 1 1' or '0,1,1', got {value!r}", param_hint="--prune"
        ) from None


@click.group("lm")
def lm_group() -> None:
    """Build KenLM n-gram language models for beam search."""


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
    "unigrams.txt is written beside it.",
)
@click.option(
    "--order",
    type=click.IntRange(1, lm.KENLM_MAX_ORDER),
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
    help="Model (hub name or folder) whose alphabet and letter case the text is normalised "
    "for; only its tokenizer is loaded. Without it the text keeps its case.",
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
def build_command(
    text_files: tuple[Path, ...],
    output: Path,
    order: int,
    prune: str | None,
    model: str | None,
    arpa_only: bool,
    save_model_dir: Path | None,
    memory: str | None,
    tmp_dir: Path | None,
) -> None:
    """Build a KenLM model from TEXT_FILES (UTF-8 text, one sentence per line; .gz, .bz2
    and .xz are read too).

    With --model, the text is normalised for that model first: folded to its case,
    punctuation removed (in-word apostrophes kept when the model has them), accents it
    lacks stripped, and words it cannot spell (numbers, other scripts) dropped.
    """
    try:
        vocab = load_vocabulary(model) if model else None
        result = lm.build_lm(
            list(text_files),
            output,
            order,
            _parse_prune(prune),
            vocab,
            binary=not arpa_only,
            model_dir_out=save_model_dir,
            memory=memory,
            tmp_dir=tmp_dir,
        )
    except W2V2Error as exc:
        raise click.ClickException(str(exc)) from None
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
