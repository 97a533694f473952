"""CTC decoding: emissions in, transcripts out. The decoder protocol and factory, greedy
decoding, CTC timing (token and word times, confidences), beam search (``decoding.beam``;
the engines it runs are imported when first used) and the one decode pool. The alphabet
and case rules beam search shares with an LM live in ``lm.alphabet``."""

from .base import Decoder
from .factory import make_decoder, make_decoders
from .greedy import GreedyDecoder

__all__ = ["Decoder", "GreedyDecoder", "make_decoder", "make_decoders"]
