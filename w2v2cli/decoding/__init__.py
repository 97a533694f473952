"""CTC decoding: emissions in, transcripts out. The decoder protocol and factory, greedy
decoding, CTC alignment (token and word times, confidences), the alphabet and case rules,
beam search (``decoding.beam``, imported when first used) and the one decode pool."""

from .base import Decoder
from .factory import make_decoder, make_decoders
from .greedy import GreedyDecoder

__all__ = ["Decoder", "GreedyDecoder", "make_decoder", "make_decoders"]
