"""Typed records passed between pipeline stages.

These are the only currency between modules: discovery makes ``AudioItem``s, chunking
makes ``Chunk``s, the runner + stitching make ``Emissions``, decoders make
``Transcript``s, and writers turn those into files. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class AudioItem:
    """One input file and where its outputs go.

    ``out_base`` is the output path without a format extension: a writer for format
    ``srt`` writes ``out_base.with_name(out_base.name + ".srt")``. ``id`` is a short,
    stable, human-readable name for messages and reports (the path relative to the
    input root, POSIX style).
    """

    path: Path
    id: str
    out_base: Path


@dataclass(frozen=True)
class Chunk:
    """A window of one file's samples, with the stride to drop on each side.

    ``start`` is the offset of ``samples[0]`` in the file (in samples at the model rate).
    ``stride_left``/``stride_right`` are in samples and follow the transformers ASR
    pipeline: the frames covering them are dropped after inference. ``file_index`` says
    which file of the run the chunk belongs to; ``index`` its position within that file.
    ``pieces`` is for chunks that join stretches of speech cut from different places of
    the file (``--vad``): ``(offset in samples, position in the file)`` of each stretch, in
    order, the first at offset 0; empty means one stretch starting at ``start``.
    """

    file_index: int
    index: int
    start: int
    samples: np.ndarray
    stride_left: int
    stride_right: int
    is_last: bool
    pieces: tuple[tuple[int, int], ...] = ()

    @property
    def length(self) -> int:
        return int(self.samples.shape[0])


@dataclass(frozen=True)
class Emissions:
    """CTC log-probabilities of one whole file, stride frames already removed.

    ``log_probs`` is ``(T, V)`` float32 natural-log softmax over the model's vocabulary.
    ``frame_starts`` is ``(T,)`` float64: the start time in seconds, from the start of the
    file, of each frame (frames of different chunks are not evenly spaced in general, so
    times are carried, not recomputed). Each frame lasts ``frame_duration`` seconds.
    ``frame_energy`` is ``(T,)`` float32, the loudness of each frame's samples in dB
    (``10 log10`` of their mean square), which word-end refinement reads; None where the
    audio is not known (emissions built by hand), and then word times are not refined.
    """

    log_probs: np.ndarray
    frame_starts: np.ndarray
    frame_duration: float
    duration: float
    frame_energy: np.ndarray | None = None

    @property
    def num_frames(self) -> int:
        return int(self.log_probs.shape[0])


#: SentencePiece's word-start marker (U+2581), which begins the first piece of a word.
WORD_START = "\u2581"


def piece_starts_word(token: str) -> bool:
    """True for a word-initial piece: one that begins with ``▁`` (SentencePiece: Parakeet,
    LASR/MedASR) or with a literal space (Omnilingual ASR) and has text after it."""
    return bool(token) and token[0] in (WORD_START, " ") and bool(piece_text(token))


def piece_text(token: str) -> str:
    """A token as it reads in text: without the word-start marker(s) it begins with."""
    return token.lstrip(WORD_START + " ")


@dataclass(frozen=True)
class Vocabulary:
    """A CTC model's output alphabet, validated once when the model is loaded.

    ``tokens[i]`` is the string of output id ``i``, as the tokenizer has it (a subword
    piece keeps its word-start marker here). ``blank_id`` is the CTC blank (the tokenizer's
    pad token for wav2vec2-style models; the config's ``blank_token_id`` where it has one).
    ``delimiter_id`` is the word delimiter (``|``) or None for alphabets that use a plain
    space token or none. ``special_ids`` are ids that must never appear in text
    (bos/eos/unk/pad and other added special tokens), the blank included.

    Words are delimited three ways, and a vocabulary may mix them: a boundary token of its
    own (the delimiter, a ``" "`` token, or a bare ``▁`` piece: ``is_word_boundary``), or a
    word-initial piece (``▁the``, or `` the`` with a literal space: ``starts_word``), which
    ends the word before it and begins a new one. ``text(i)`` is what a token adds to a
    word: the marker never reaches the text.
    """

    tokens: tuple[str, ...]
    blank_id: int
    delimiter_id: int | None
    special_ids: frozenset[int]

    @property
    def size(self) -> int:
        return len(self.tokens)

    def is_word_boundary(self, token_id: int) -> bool:
        """The delimiter, or a token of only spaces and ``▁`` markers (``" "``, ``"▁"``)."""
        if token_id == self.delimiter_id:
            return True
        token = self.tokens[token_id]
        return bool(token) and not piece_text(token)

    def starts_word(self, token_id: int) -> bool:
        """A word-initial piece (``▁the``, `` the``): it begins a new word."""
        return piece_starts_word(self.tokens[token_id])

    def text(self, token_id: int) -> str:
        """What token ``token_id`` adds to a word's text (without a word-start marker)."""
        return piece_text(self.tokens[token_id])

    @property
    def is_subword(self) -> bool:
        """True when words are marked by word-initial pieces (a SentencePiece-style
        vocabulary), not by a boundary token between them."""
        return any(
            self.starts_word(i)
            for i in range(self.size)
            if i != self.blank_id and i not in self.special_ids
        )


@dataclass(frozen=True)
class TokenSpan:
    """One emitted token (a character for character-level models) with its frame times."""

    text: str
    start: float
    end: float
    confidence: float


@dataclass(frozen=True)
class Word:
    """A word with its absolute times in seconds within the file and a 0..1 confidence.

    ``interpolated`` is for forced alignment (``w2v2 align``): True for a word of the given
    text that the model cannot spell, whose times come from its neighbours and whose
    confidence means nothing; False for an aligned word; None (decoders) when it does not
    apply.
    """

    text: str
    start: float
    end: float
    confidence: float
    interpolated: bool | None = None


@dataclass(frozen=True)
class Transcript:
    """What a decoder produces for one file; writers need nothing else.

    ``confidence`` is the file-level confidence (None for empty transcripts).
    ``model`` and ``decoder`` are filled in by the pipeline for the JSON output.
    ``score`` is forced alignment's match score (how well the given text explains the
    audio, 0..1; ``alignment/aligner.py``); None for decoders.
    """

    text: str
    words: tuple[Word, ...]
    duration: float
    confidence: float | None = None
    tokens: tuple[TokenSpan, ...] = ()
    model: str = ""
    decoder: str = ""
    score: float | None = None


@dataclass(frozen=True)
class Cue:
    """One subtitle cue: times in seconds and one or more display lines."""

    start: float
    end: float
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


@dataclass(frozen=True)
class FileResult:
    """The outcome of one input file in a run."""

    item: AudioItem
    status: str  # "done" | "skipped" | "failed"
    duration: float = 0.0
    transcript: Transcript | None = None
    error: str | None = None
    outputs: tuple[Path, ...] = field(default_factory=tuple)
