"""The ``w2v2`` command line: one module per command group over the library API.

``transcribe.py``, ``align.py``, ``eval.py``, ``lm.py``, ``export.py``, ``convert.py`` and
``languages.py`` hold the commands; ``options.py`` the option groups they share;
``errors.py`` the one mapping from faults to messages and exit statuses; ``render.py`` and
``progress.py`` everything that is drawn.
Heavy imports happen inside the commands, so ``w2v2 --help`` starts fast.
"""

from __future__ import annotations

import logging

import click

from .align import align_command
from .convert import convert_command
from .eval import eval_command
from .export import export_command
from .languages import languages_command
from .lm import lm_group
from .transcribe import transcribe


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="w2v2cli")
@click.option("-v", "--verbose", is_flag=True, help="Log debugging details to stderr.")
def main(verbose: bool) -> None:
    """Batch speech transcription and subtitles with wav2vec 2.0-style CTC models."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(levelname)s: %(message)s",
    )


main.add_command(transcribe)
main.add_command(align_command)
main.add_command(eval_command)
main.add_command(lm_group)
main.add_command(export_command)
main.add_command(convert_command)
main.add_command(languages_command)

__all__ = ["main"]
