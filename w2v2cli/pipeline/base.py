"""What the drivers (``run.iter_run``, ``scale.ray_data``) drive: ``FilePipeline``, and
``ModelPipeline``, the base of ``Transcriber`` and ``Aligner``: a model loaded once
(``inference.Engine``) whose emissions each file's result is made from."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

from ..errors import W2V2Error
from ..inference import AudioLoader, Engine, Runner, file_loader
from ..models import LoadedModel
from ..options import RunOptions
from ..output import Writer
from ..records import AudioItem, Emissions, Transcript
from .workers import FileWorkers

P = TypeVar("P", bound="ModelPipeline")


class FilePipeline(Protocol):
    """What ``run.iter_run`` drives: emissions per file and a transcript per file's emissions.

    ``Transcriber`` (a decoder) and ``Aligner`` with its texts (``aligner.TextsPipeline``)
    are the two. ``workers`` is how many files ``submit`` works on at once (0:
    synchronously). ``output_workers`` gives the processes that finish files instead
    (``pipeline/workers.py``), or None where this process does it.
    """

    options: RunOptions

    @property
    def sampling_rate(self) -> int: ...
    @property
    def workers(self) -> int: ...
    def emissions(
        self, loaders: Iterable[AudioLoader], on_audio: Callable[[float], None] | None = None
    ) -> Iterator[tuple[int, Emissions | W2V2Error]]: ...
    def submit(self, item: AudioItem, emissions: Emissions) -> Future[Transcript]: ...
    def label(self, transcript: Transcript) -> Transcript: ...
    def output_workers(self, writers: list[Writer], to_stream: bool) -> FileWorkers | None: ...


class ModelPipeline:
    """A model loaded once from ``options`` (``Engine.from_options``), freed by ``close``
    (or on leaving a ``with`` block); the emissions of arrays, files or many files."""

    def __init__(
        self,
        options: RunOptions | None = None,
        *,
        exact: bool = True,
        notify: Callable[[str], None] | None = None,
    ) -> None:
        self.options = options or RunOptions()
        self.engine = Engine.from_options(self.options, exact=exact, notify=notify)

    @property
    def loaded(self) -> LoadedModel:
        return self.engine.loaded

    @property
    def runner(self) -> Runner:
        return self.engine.runner

    @property
    def sampling_rate(self) -> int:
        return self.engine.sampling_rate

    def close(self) -> None:
        self.engine.close()

    def __enter__(self: P) -> P:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def emissions(
        self, loaders: Iterable[AudioLoader], on_audio: Callable[[float], None] | None = None
    ) -> Iterator[tuple[int, Emissions | W2V2Error]]:
        """The engine's emissions (see ``inference.Engine.emissions``)."""
        return self.engine.emissions(loaders, on_audio)

    def array_emissions(self, samples: np.ndarray) -> Emissions:
        """The emissions of mono float32 samples at ``self.sampling_rate``; raises the
        reason they cannot be had."""
        return self._one(lambda: np.asarray(samples, dtype=np.float32))

    def file_emissions(self, path: str | Path) -> Emissions:
        """The emissions of one audio file of any supported format; raises on a bad file."""
        return self._one(file_loader(Path(path), self.sampling_rate))

    def _one(self, loader: AudioLoader) -> Emissions:
        ((_, em),) = list(self.emissions([loader]))
        if isinstance(em, W2V2Error):
            raise em
        return em
