"""``Aligner``: a model loaded once that aligns known texts to audio (``w2v2 align``); with
each file's text (``TextsPipeline``), ``run.iter_run`` drives it as it drives
``Transcriber``, so alignments are written by the same writers."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from ..alignment import align
from ..errors import DecodeError, W2V2Error
from ..inference import AudioLoader
from ..options import AlignOptions, RunOptions
from ..output import Writer
from ..records import AudioItem, Emissions, Transcript
from .base import ModelPipeline


class Aligner(ModelPipeline):
    """A model, loaded once (``inference.Engine``), that aligns known texts to audio.

    >>> with Aligner(RunOptions()) as a:                     # doctest: +SKIP
    ...     a.align_file("talk.wav", "the words of the talk").words

    ``options.decoding`` is not used. ``close`` frees the model.
    """

    workers = 0  # alignment runs in the calling thread

    def __init__(
        self,
        options: RunOptions | None = None,
        align_options: AlignOptions | None = None,
        *,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(options, notify=notify)
        self.align_options = align_options or AlignOptions()

    def align(self, emissions: Emissions, text: str) -> Transcript:
        """``text`` aligned to one file's emissions (``alignment.align``), labelled."""
        transcript = align(
            emissions,
            text,
            self.loaded.vocabulary,
            min_score=self.align_options.min_score,
            tokenizer=self.loaded.tokenizer,  # spells words for a subword vocabulary
        )
        return self.label(transcript)

    def label(self, transcript: Transcript) -> Transcript:
        return dataclasses.replace(transcript, model=self.loaded.name)

    def align_array(self, samples: np.ndarray, text: str) -> Transcript:
        """Align ``text`` to mono float32 samples at ``self.sampling_rate``."""
        return self.align(self.array_emissions(samples), text)

    def align_file(self, path: str | Path, text: str) -> Transcript:
        """Align ``text`` to one audio file of any supported format."""
        return self.align(self.file_emissions(path), text)


class TextsPipeline:
    """An ``Aligner`` with each item's text: the ``FilePipeline`` that ``run.iter_run``
    drives for ``w2v2 align`` (``run.iter_align``)."""

    workers = 0

    def __init__(self, aligner: Aligner, texts: dict[AudioItem, str]) -> None:
        self.aligner = aligner
        self.options = aligner.options
        self.texts = texts

    @property
    def sampling_rate(self) -> int:
        return self.aligner.sampling_rate

    def emissions(
        self, loaders: Iterable[AudioLoader], on_audio: Callable[[float], None] | None = None
    ) -> Iterator[tuple[int, Emissions | W2V2Error]]:
        return self.aligner.emissions(loaders, on_audio)

    def label(self, transcript: Transcript) -> Transcript:
        return transcript  # already labelled by Aligner.align

    def output_workers(self, writers: list[Writer], to_stream: bool) -> None:
        """None: alignment and writing run in this process (``FilePipeline``)."""
        return None

    def submit(self, item: AudioItem, emissions: Emissions) -> Future[Transcript]:
        future: Future[Transcript] = Future()
        try:
            future.set_result(self.aligner.align(emissions, self.texts[item]))
        except W2V2Error as exc:
            future.set_exception(exc)
        except Exception as exc:  # a bug must cost this file only
            future.set_exception(DecodeError(f"alignment failed: {type(exc).__name__}: {exc}"))
        return future
