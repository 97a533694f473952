"""What ``w2v2 align`` calls: ``Aligner`` (a model loaded once) and ``iter_align`` (each
file's emissions from the engine, aligned to its text, written by the same writers as
``transcribe``: ``run.iter_run`` drives both)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import numpy as np

from ..errors import DecodeError, W2V2Error
from ..options import AlignOptions, RunOptions
from ..records import AudioItem, Emissions, FileResult, Transcript
from .aligner import align

if TYPE_CHECKING:
    from ..inference import AudioLoader
    from ..models import LoadedModel
    from ..run import Progress


class Aligner:
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
        from ..inference import Engine

        self.options = options or RunOptions()
        self.align_options = align_options or AlignOptions()
        self.engine = Engine(
            self.options.model,
            self.options.chunking,
            batch_size=self.options.batch_size,
            max_padding=self.options.max_padding,
            notify=notify,
            vad=self.options.vad,
        )

    @property
    def loaded(self) -> LoadedModel:
        return self.engine.loaded

    @property
    def sampling_rate(self) -> int:
        return self.engine.sampling_rate

    def close(self) -> None:
        self.engine.close()

    def __enter__(self) -> Aligner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def emissions(
        self, loaders: Iterable[AudioLoader], on_audio: Callable[[float], None] | None = None
    ) -> Iterator[tuple[int, Emissions | W2V2Error]]:
        return self.engine.emissions(loaders, on_audio)

    def align(self, emissions: Emissions, text: str) -> Transcript:
        """``text`` aligned to one file's emissions (``aligner.align``), labelled."""
        transcript = align(
            emissions, text, self.loaded.vocabulary, min_score=self.align_options.min_score
        )
        return self.label(transcript)

    def label(self, transcript: Transcript) -> Transcript:
        return dataclasses.replace(transcript, model=self.loaded.name)

    def align_array(self, samples: np.ndarray, text: str) -> Transcript:
        """Align ``text`` to mono float32 samples at ``self.sampling_rate``."""
        ((_, em),) = list(self.emissions([lambda: np.asarray(samples, dtype=np.float32)]))
        if isinstance(em, W2V2Error):
            raise em
        return self.align(em, text)

    def align_file(self, path: str | Path, text: str) -> Transcript:
        """Align ``text`` to one audio file of any supported format."""
        from ..inference import file_loader

        ((_, em),) = list(self.emissions([file_loader(Path(path), self.sampling_rate)]))
        if isinstance(em, W2V2Error):
            raise em
        return self.align(em, text)


class _TextsPipeline:
    """An ``Aligner`` with each item's text: the ``run.FilePipeline`` that ``iter_run``
    drives."""

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

    def submit(self, item: AudioItem, emissions: Emissions) -> Future[Transcript]:
        future: Future[Transcript] = Future()
        try:
            future.set_result(self.aligner.align(emissions, self.texts[item]))
        except W2V2Error as exc:
            future.set_exception(exc)
        except Exception as exc:  # a bug must cost this file only
            future.set_exception(DecodeError(f"alignment failed: {type(exc).__name__}: {exc}"))
        return future


def iter_align(
    pairs: Sequence[tuple[AudioItem, str]],
    aligner: Aligner,
    *,
    progress: Progress | None = None,
    stream: TextIO | None = None,
) -> Iterator[FileResult]:
    """Align each item's text and write its outputs, as ``run.iter_run`` does for
    transcripts (skipping finished files, ``--stdout``, one failure per file)."""
    from ..run import iter_run

    pipeline = _TextsPipeline(aligner, dict(pairs))
    return iter_run([item for item, _ in pairs], pipeline, progress=progress, stream=stream)
