"""The decoder interface: ``Emissions`` in, ``Transcript`` out.

Decoders never touch files and never see the model. The pipeline calls ``submit`` for
every file as soon as its emissions are complete and collects results in order, so a
decoder backed by a process pool overlaps with the model; ``workers`` says how many files
it decodes at once (0: in the calling thread, as ``submit`` does by default), which is how
callers size their queues. ``close`` releases workers; decoders are context managers.
Every failure of ``decode`` or of a submitted future is a ``W2V2Error`` (``DecodeError``
for library failures), so a caller fails that one file.
"""

from __future__ import annotations

from concurrent.futures import Future

from ..errors import DecodeError, W2V2Error
from ..records import Emissions, Transcript, Vocabulary


class Decoder:
    """Base class. Subclasses implement ``decode``; ``submit`` may run it elsewhere."""

    name: str = "decoder"
    #: Files decoded concurrently by ``submit`` (0: synchronously, in the caller's thread).
    workers: int = 0

    def __init__(self, vocabulary: Vocabulary) -> None:
        self.vocabulary = vocabulary

    def decode(self, emissions: Emissions) -> Transcript:
        raise NotImplementedError

    def submit(self, emissions: Emissions) -> Future[Transcript]:
        """Decode now; the future holds the result or the error (as ``W2V2Error``)."""
        future: Future[Transcript] = Future()
        try:
            future.set_result(self.decode(emissions))
        except W2V2Error as exc:
            future.set_exception(exc)
        except Exception as exc:  # a library failing in a new way: this file fails
            reason = f"{type(exc).__name__}: {exc}"
            future.set_exception(DecodeError(f"{self.name} decoding failed: {reason}"))
        return future

    def close(self) -> None:
        pass

    def __enter__(self) -> Decoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
