"""CTC decoders behind one interface: ``Emissions`` in, ``Transcript`` out.

Greedy decoding lives here; beam search with KenLM lives in ``beam.py`` and subclasses
``Decoder``. Decoders never touch files and never see the model.
"""

from __future__ import annotations

from concurrent.futures import Future

import numpy as np

from .records import Emissions, Transcript, Vocabulary
from .timing import align_path, file_confidence


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


class GreedyDecoder(Decoder):
    """Best path decoding: the most likely id per frame, CTC-collapsed.

    Repeats collapse into one token, blanks go, a word delimiter (or a ``" "`` token)
    separates words, and special tokens (``<unk>``, ``<s>``, ...) are then dropped without
    splitting a word (see ``timing.token_kind``): collapsing comes first, as CTC defines
    it, so ``L <unk> L`` gives ``LL``. The text is the words joined by single spaces, so it
    never has leading, trailing or doubled spaces and always agrees with
    ``Transcript.words``. Word times and confidences are defined in ``timing.py``. Needs no
    LM; the default when none is available.
    """

    name = "greedy"

    def decode(self, emissions: Emissions) -> Transcript:
        if emissions.num_frames:
            path = np.asarray(emissions.log_probs).argmax(axis=1)
        else:
            path = np.zeros(0, dtype=np.int64)
        tokens, words = align_path(path, emissions, self.vocabulary)
        return Transcript(
            text=" ".join(w.text for w in words),
            words=words,
            duration=emissions.duration,
            confidence=file_confidence(words),
            tokens=tokens,
            decoder=self.name,
        )
