"""Speech-aware segmentation (``--vad``): stretches of speech → chunks that never carry
non-speech, with the map back to the file's times. Pure; the VAD itself is ``inference/vad.py``.
Fixed chunks over the whole file are ``chunking.split``."""

from .speech import merge_spans, speech_chunks

__all__ = ["merge_spans", "speech_chunks"]
