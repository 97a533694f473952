"""Where the speech is: Silero VAD (``--vad``), the optional ``vad`` extra.

``SileroVad`` loads the model shipped in the ``silero-vad`` wheel (its TorchScript file:
nothing is downloaded) once, and ``speech_spans`` returns the stretches of speech of one
file's samples, padding included, as sample ranges; ``segmentation.speech_chunks`` turns
them into chunks. It runs in the engine's reading thread, beside the model: on one core
when the model is on the CPU (which needs the others), on all of them when it is on a GPU.

**Parallel streams.** Silero is a recurrent model that reads 32 ms windows one after
another, and one model call per window costs far more in overhead than in arithmetic.
So a file is read as up to ``MAX_STREAMS`` streams side by side, one batched call per
step: stream ``k`` covers its own stretch of windows and first runs over the
``WARM_UP`` windows (2 s) before it, so its state has the audio's history (stream 0
starts at the file's start, as a single pass does). The speech probabilities differ a
little from one sequential pass (a recurrent state never forgets entirely: mean
difference 0.01 on the benchmark's files), the stretches of speech found agree within a
window or two, and it is twice as fast here (120x real time on one core, against 61x).
Probabilities become stretches with Silero's own ``get_speech_timestamps_from_probs``.
"""

from __future__ import annotations

import logging
import math
import warnings
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..options import VadOptions
from ..segmentation import merge_spans

log = logging.getLogger("w2v2cli")

INSTALL = "pip install 'w2v2cli[vad]'"
#: Parallel streams (see the module docstring): at most this many, each at least
#: ``MIN_STREAM`` windows long, each warmed up on the ``WARM_UP`` windows before it.
MAX_STREAMS = 256
MIN_STREAM = 256
WARM_UP = 64


class SileroVad:
    """Silero VAD with ``VadOptions``; raises ``ConfigError`` when the extra is missing or
    the model's rate is one Silero cannot read (it takes 8 and 16 kHz). ``threads``: CPU
    threads of the thread that calls ``speech_spans`` (the engine gives it one core when
    the model runs on the CPU, and the CPU's cores when it runs on a GPU)."""

    def __init__(self, options: VadOptions, sampling_rate: int, threads: int = 1) -> None:
        import torch

        saved = torch.get_num_threads()
        try:
            from silero_vad import get_speech_timestamps_from_probs, load_silero_vad
        except ImportError:
            raise ConfigError(f"--vad needs the silero-vad package: {INSTALL}") from None
        finally:
            # Importing silero_vad calls torch.set_num_threads(1), which would leave the model
            # on one core: the setting is per thread, so the importing thread gets its own back.
            torch.set_num_threads(saved)
        if sampling_rate not in (8000, 16000):
            raise ConfigError(
                f"--vad works on 8 or 16 kHz audio; this model takes {sampling_rate} Hz"
            )
        self.options = options
        self.sampling_rate = sampling_rate
        self.threads = max(1, threads)
        self._timestamps = get_speech_timestamps_from_probs
        self.window = 512 if sampling_rate == 16000 else 256
        with warnings.catch_warnings():  # its loader uses deprecated importlib and torch.jit calls
            warnings.simplefilter("ignore", DeprecationWarning)
            self._model: Any = load_silero_vad()

    def speech_spans(self, samples: np.ndarray) -> list[tuple[int, int]]:
        """``[start, end)`` sample ranges of speech in ``samples``, padded and merged."""
        import torch

        n = int(samples.shape[0])
        if n == 0:
            return []
        o = self.options
        saved = torch.get_num_threads()
        torch.set_num_threads(self.threads)  # for this thread only
        try:
            probs = self.speech_probs(np.ascontiguousarray(samples, dtype=np.float32))
        finally:
            torch.set_num_threads(saved)
        found = self._timestamps(
            probs.tolist(),
            audio_length_samples=n,
            threshold=o.threshold,
            sampling_rate=self.sampling_rate,
            min_speech_duration_ms=int(round(1000 * o.MIN_SPEECH)),
            min_silence_duration_ms=int(round(1000 * o.min_silence)),
            speech_pad_ms=int(round(1000 * o.padding)),
            max_speech_duration_s=math.inf,
        )
        spans = merge_spans([(int(s["start"]), int(s["end"])) for s in found], n)
        log.debug(
            "VAD: %d stretches of speech, %.1f of %.1f s",
            len(spans),
            sum(b - a for a, b in spans) / self.sampling_rate,
            n / self.sampling_rate,
        )
        return spans

    def speech_probs(self, samples: np.ndarray) -> np.ndarray:
        """Silero's speech probability of every window of ``samples`` (the last one padded
        with zeros), read as parallel streams (see the module docstring)."""
        import torch

        w = self.window
        windows = -(-len(samples) // w)
        streams = max(1, min(MAX_STREAMS, windows // MIN_STREAM))
        per = -(-windows // streams)  # windows of its own per stream
        warm = WARM_UP if streams > 1 else 0
        steps = per + warm
        audio = np.zeros(windows * w, np.float32)
        audio[: len(samples)] = samples
        batch = np.zeros((streams, steps * w), np.float32)
        skip = np.zeros(streams, dtype=np.int64)  # warm-up steps of each stream
        for k in range(streams):
            first = max(0, k * per - warm)
            piece = audio[first * w : (k + 1) * per * w]
            batch[k, : len(piece)] = piece
            skip[k] = k * per - first
        x = torch.from_numpy(batch)
        out = np.empty((streams, steps), np.float32)
        with torch.inference_mode():
            self._model.reset_states()
            for step in range(steps):
                out[:, step] = (
                    self._model(x[:, step * w : (step + 1) * w], self.sampling_rate)
                    .numpy()
                    .reshape(-1)
                )
        probs = np.concatenate([out[k, skip[k] : skip[k] + per] for k in range(streams)])
        return probs[:windows]
