"""Forced alignment of known text (``w2v2 align``): the text's words spelled for the
model, a windowed CTC Viterbi with bounded memory, word times, scores and the mismatch
check. Pure functions over ``Emissions``: the model runs in ``inference``, and
``pipeline.Aligner`` puts the two together."""

from .aligner import DECODER_NAME, DEFAULT_MIN_SCORE, align, match_score
from .text import TextWord, split_text

__all__ = [
    "DECODER_NAME",
    "DEFAULT_MIN_SCORE",
    "TextWord",
    "align",
    "match_score",
    "split_text",
]
