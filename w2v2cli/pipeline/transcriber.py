"""``Transcriber``: a model and a decoder, loaded once; transcribe arrays, files or runs
(``run.iter_run`` drives it for ``w2v2 transcribe``)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from ..cores import available_cores
from ..decoding import Decoder, make_decoder
from ..errors import W2V2Error
from ..inference import file_loader
from ..options import RunOptions
from ..output import Writer
from ..records import AudioItem, Emissions, Transcript
from .base import ModelPipeline
from .workers import (
    FileWorkers,
    default_workers,
    portable,
    recipe_for,
    start_early,
)

log = logging.getLogger("w2v2cli")


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
        run_options = options or RunOptions()
        asked = run_options.decoding.workers
        cuda = run_options.model.device.startswith("cuda")
        if asked or (asked is None and default_workers(run_options.decoding.decoder, cuda) > 0):
            start_early()  # while the model loads (not where no worker will run: it costs CPU)
        super().__init__(options, exact=exact, notify=notify)
        self._decoder = decoder
        self._file_workers: int | None = None
        self._output_pool: FileWorkers | None = None

    @property
    def decoder(self) -> Decoder:
        """The run's decoder, built on first use (``decoding.make_decoder``)."""
        if self._decoder is None:
            self._decoder = make_decoder(
                self.loaded.vocabulary, self.options.decoding, self.loaded.find_lm_dir
            )
        return self._decoder

    def close(self) -> None:
        if self._output_pool is not None:
            self._output_pool.close()
            self._output_pool = None
        if self._decoder is not None:
            self._decoder.close()
            self._decoder = None
        super().close()

    def label(self, transcript: Transcript) -> Transcript:
        """``transcript`` with this run's model and decoder names (for the JSON output)."""
        return dataclasses.replace(transcript, model=self.loaded.name, decoder=self.decoder.name)

    @property
    def workers(self) -> int:
        """Files worked on at once outside this thread: the file workers (``file_workers``),
        else the decoder's own (builds the decoder)."""
        return self.file_workers or self.decoder.workers

    @property
    def file_workers(self) -> int:
        """Processes that decode, render and write each file (``pipeline/workers.py``):
        ``--decode-workers N``, else ``default_workers`` for this decoder and device; 0 for
        none (everything in this process)."""
        if self._file_workers is None:
            asked = self.options.decoding.workers
            if not portable(self.decoder):
                asked = 0  # a caller's own decoder: it runs where it was made
            elif asked is None:
                on_cuda = self.runner.backend.on_cuda
                asked = default_workers(self.decoder.name, on_cuda)
                log.debug(
                    "file workers: %d (%d usable cores, %s decoding, model on %s; "
                    "--decode-workers sets it)",
                    asked,
                    available_cores(),
                    self.decoder.name,
                    "CUDA" if on_cuda else "CPU",
                )
            self._file_workers = int(asked)
        return self._file_workers

    def output_workers(self, writers: list[Writer], to_stream: bool) -> FileWorkers | None:
        """The file workers for a run writing ``writers`` (to files, or rendered for a
        stream), started once and kept while the run's outputs stay the same; None when
        this process does it all (``file_workers`` is 0)."""
        if self.file_workers == 0:
            return None
        recipe = recipe_for(
            self.decoder, writers, self.options.output, self.loaded.name, not to_stream
        )
        if self._output_pool is not None and self._output_pool.recipe != recipe:
            self._output_pool.close()
            self._output_pool = None
        if self._output_pool is None:
            self._output_pool = FileWorkers(self.file_workers, recipe)
        return self._output_pool

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
