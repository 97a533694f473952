"""Turning transcripts into files: subtitle cues (segmenter), ``--case``, and one writer
class per format behind a registry."""

from .casing import apply_case, check_case
from .segmenter import segment
from .writers import WRITERS, Writer, expand_formats, get_writers

__all__ = [
    "WRITERS",
    "Writer",
    "apply_case",
    "check_case",
    "expand_formats",
    "get_writers",
    "segment",
]
