"""Greedy (best path) CTC decoding: the most likely id per frame, collapsed."""

from __future__ import annotations

import numpy as np

from ..records import Emissions, Transcript
from .base import Decoder
from .timing import align_path, file_confidence


class GreedyDecoder(Decoder):
    """Best path decoding: the most likely id per frame, CTC-collapsed.

    Repeats collapse into one token, blanks go, a word delimiter (or a ``" "`` token, or
    a bare ``▁``) separates words, a word-initial piece (``▁the``, `` the``) begins one,
    and special tokens (``<unk>``, ``<s>``, ...) are then dropped without
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
