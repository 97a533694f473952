"""CTC decoders behind one interface: ``Emissions`` in, ``Transcript`` out.

Greedy decoding lives here; beam search with KenLM lives in ``beam.py`` and subclasses
``Decoder``. Decoders never touch files and never see the model.
"""

from __future__ import annotations

from concurrent.futures import Future

from .records import Emissions, Transcript, Vocabulary


class Decoder:
    """Base class. Subclasses implement ``decode``; ``submit`` may run it elsewhere.

    The pipeline calls ``submit`` for every file as soon as its emissions are complete and
    collects results in order, so a decoder backed by a process pool overlaps with the
    model. ``close`` releases workers; decoders are context managers.
    """

    name: str = "decoder"

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary

    def decode(self, emissions: Emissions) -> Transcript:
        raise NotImplementedError

    def submit(self, emissions: Emissions) -> Future[Transcript]:
        future: Future[Transcript] = Future()
        try:
            future.set_result(self.decode(emissions))
        except BaseException as exc:  # handed to the caller through the future
            future.set_exception(exc)
        return future

    def close(self) -> None:
        pass

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
