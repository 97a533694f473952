"""Run batches of chunks through a backend: ``Chunk``s in, log-probabilities out.

The only module that knows about padding: it turns ``Chunk``s into per-chunk
log-probabilities holding exactly the frames each chunk's real samples produce. Devices,
dtypes and masks are the backend's (``torch_backend``, ``openvino_backend``); the runner
never decodes text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from ..models import LoadedModel
from ..records import Chunk


class Backend(Protocol):
    """What runs the model: padded ``(B, T)`` float32 features and the true lengths in,
    ``(B, frames, vocab)`` float32 log-probabilities out."""

    name: str
    precision: str
    on_cuda: bool
    threads: int

    def log_probs(self, batch: np.ndarray, lengths: list[int]) -> np.ndarray: ...
    def close(self) -> None: ...


class Runner:
    """Runs batches of chunks; one per engine, around its own model and backend.

    Batching policy (see ``chunking.plan_batches``): ``max_padding`` is how much padding a
    chunk may bring into a batch. On CPU a batch is no faster than its items one by one
    (benchmarks/RESULTS.md), so by default only chunks of equal length share one; on CUDA
    batching is the speed, so padding is not limited, except for families whose results
    padding would change (``models/families.py``), which batch equal lengths only.
    ``batch_size`` defaults to 8 on CUDA and 1 on CPU.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        backend: Backend,
        max_padding: float | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.loaded = loaded
        self.backend = backend
        on_cuda = backend.on_cuda
        if max_padding is None:  # a family padding would change batches only equal lengths
            max_padding = 1.0 if on_cuda and loaded.padding_exact else 0.0
        self.max_padding = max_padding
        self.batch_size = batch_size or (8 if on_cuda else 1)
        self._min_samples: int | None = None

    @property
    def patched(self) -> bool:
        """Whether exact batching is on (torch backend; other backends never pad)."""
        return bool(getattr(self.backend, "patched", True))

    def features(self, samples: np.ndarray) -> np.ndarray:
        """The feature extractor on one chunk alone (its normalisation is per chunk)."""
        fe = self.loaded.feature_extractor
        out = fe(samples, sampling_rate=self.loaded.sampling_rate, return_tensors="np")
        return np.asarray(out["input_values"][0], dtype=np.float32)

    def frames_for(self, num_samples: Sequence[int]) -> list[int]:
        """Frames the model outputs for inputs of these lengths (0 for too-short inputs)."""
        return [self.loaded.output_frames(n) for n in num_samples]

    @property
    def min_samples(self) -> int:
        """The shortest input that gives one output frame (the convolutions' receptive
        field: 400 samples, 25 ms, for wav2vec2). Shorter chunks give no frames and are not
        run: the convolutions would fail on them."""
        if self._min_samples is None:
            n = 1
            while self.loaded.output_frames(n) < 1:
                n += 1
            self._min_samples = n
        return self._min_samples

    def run(self, chunks: Sequence[Chunk]) -> list[np.ndarray]:
        """Log-probabilities ``(frames, vocab)`` for each chunk, padding frames removed."""
        vocab = self.loaded.vocabulary.size
        out: list[np.ndarray] = [np.zeros((0, vocab), np.float32) for _ in chunks]
        live = [i for i, c in enumerate(chunks) if c.length >= self.min_samples]
        if not live:
            return out
        feats = [self.features(chunks[i].samples) for i in live]
        lengths = [f.shape[0] for f in feats]
        batch = np.zeros((len(feats), max(lengths)), dtype=np.float32)
        for row, f in enumerate(feats):
            batch[row, : f.shape[0]] = f
        log_probs = self.backend.log_probs(batch, lengths)
        for row, i in enumerate(live):
            out[i] = log_probs[row, : self.loaded.output_frames(lengths[row])]
        return out

    def close(self) -> None:
        self.backend.close()
