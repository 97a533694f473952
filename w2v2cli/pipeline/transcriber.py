"""``Transcriber``: a model and a decoder, loaded once; transcribe arrays, files or runs
(``run.iter_run`` drives it for ``w2v2 transcribe``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import numpy as np

from ..decoding import Decoder, GreedyDecoder, make_decoder
from ..decoding.pool import WorkerPool
from ..errors import W2V2Error
from ..inference import file_loader
from ..options import RunOptions
from ..output import Writer, get_writers
from ..records import AudioItem, Emissions, Transcript
from .base import ModelPipeline


class Transcriber(ModelPipeline):
    """Load a model once; transcribe arrays, files or whole runs.

    >>> t = Transcriber(RunOptions())                       # doctest: +SKIP
    >>> t.transcribe_file("talk.wav").text                 # doctest: +SKIP

    The model is this transcriber's own (``inference.Engine``); ``close`` frees it and the
    decoder's workers. ``exact=False`` turns exact batching off (benchmarks only);
    ``notify`` receives one-line notices (a first OpenVINO conversion).
    """

    def __init__(
        self,
        options: RunOptions | None = None,
        *,
        exact: bool = True,
        decoder: Decoder | None = None,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        super().__init__(options, exact=exact, notify=notify)
        self._decoder = decoder
        self._render_pool: WorkerPool | None = None

    @property
    def decoder(self) -> Decoder:
        """The run's decoder, built on first use (``decoding.make_decoder``)."""
        if self._decoder is None:
            self._decoder = make_decoder(
                self.loaded.vocabulary, self.options.decoding, self.loaded.find_lm_dir
            )
        return self._decoder

    def close(self) -> None:
        if self._render_pool is not None:
            self._render_pool.close()
            self._render_pool = None
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
        super().close()

    def label(self, transcript: Transcript) -> Transcript:
        """``transcript`` with this run's model and decoder names (for the JSON output)."""
        return dataclasses.replace(transcript, model=self.loaded.name, decoder=self.decoder.name)

    @property
    def workers(self) -> int:
        """Files the decoder works on at once (builds the decoder)."""
        return self.render_workers or self.decoder.workers

    @property
    def render_workers(self) -> int:
        """Processes that decode greedily *and* render the outputs (``submit_rendered``),
        0 for none: ``--decode-workers N`` with greedy decoding (beam search has its own
        workers). Off by default: on a GPU this process's one thread decoding, segmenting
        and formatting every file is what held the GPU back (docs/performance.md, "On a
        GPU"), but on 2 cores the workers measured no faster than one process, and no GPU
        machine was at hand to measure them on."""
        if not isinstance(self.decoder, GreedyDecoder):
            return 0
        return self.options.decoding.workers or 0

    def submit_rendered(
        self, item: AudioItem, emissions: Emissions, writers: list[Writer]
    ) -> Future[tuple[Transcript, list[str | Exception]]]:
        """Decode greedily and render every writer's text in a worker process (see
        ``render_workers``); the future fails only with ``W2V2Error``."""
        if self._render_pool is None:
            out = self.options.output
            self._render_pool = WorkerPool(
                self.render_workers,
                _renderer,
                self.loaded.vocabulary,
                [w.extension for w in writers],
                out.subtitles,
                out.case,
            )
        return self._render_pool.submit(_decode_and_render, emissions, item, self.loaded.name)

    def submit(self, item: AudioItem, emissions: Emissions) -> Future[Transcript]:
        """Decode one file's emissions (``FilePipeline``)."""
        return self.decoder.submit(emissions)

    def transcribe_array(self, samples: np.ndarray) -> Transcript:
        """Transcribe mono float32 samples already at ``self.sampling_rate``."""
        return self.label(self.decoder.decode(self.array_emissions(samples)))

    def transcribe_file(self, path: str | Path) -> Transcript:
        """Transcribe one audio file of any supported format."""
        return self.transcribe_files([path])[0]

    def transcribe_files(self, paths: Sequence[str | Path]) -> list[Transcript]:
        """Transcribe several files, batched together; raises on the first bad file."""
        loaders = [file_loader(Path(p), self.sampling_rate) for p in paths]
        futures: list[Future[Transcript]] = []
        for _, em in self.emissions(loaders):
            if isinstance(em, W2V2Error):
                raise em
            futures.append(self.decoder.submit(em))
        return [self.label(f.result()) for f in futures]


def _renderer(vocabulary: Any, formats: list[str], subtitles: Any, case: str) -> tuple:
    """A render worker's state (``Transcriber.submit_rendered``): a greedy decoder and
    the run's writers."""
    return GreedyDecoder(vocabulary), get_writers(formats, subtitles, case)


def _decode_and_render(
    state: tuple, emissions: Emissions, item: AudioItem, model: str
) -> tuple[Transcript, list[str | Exception]]:
    """In a worker: the file's transcript and each writer's text (or its error)."""
    decoder, writers = state
    transcript = dataclasses.replace(decoder.decode(emissions), model=model, decoder=decoder.name)
    texts: list[str | Exception] = []
    for w in writers:
        try:
            texts.append(w.render(transcript, item))
        except Exception as exc:  # noqa: BLE001 - reported as that output's failure
            texts.append(exc)
    return transcript, texts
