"""Run batches of chunks through a backend: ``Chunk``s in, log-probabilities out.

The only module that knows about padding: it turns ``Chunk``s into per-chunk
log-probabilities holding exactly the frames each chunk's real samples produce. Devices,
dtypes and masks are the backend's (``torch_backend``, ``openvino_backend``); the runner
never decodes text.

Features are what the model reads: samples (wav2vec2 and kin, Omnilingual ASR) or, for
W2V-BERT, stacked filterbank frames ``(frames, 160)`` with the feature extractor's own mask
(an odd number of filterbank frames leaves the last stacked frame masked), or, for Parakeet
CTC and LASR, log-mel frames ``(frames, bins)`` (Parakeet's mask leaves the last frame
out). A batch pads them along time; ``lengths`` are the unmasked positions of each row.
For families that padding would change (``models/families.py``), rows of different shapes
never share a backend call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np

from ..models import LoadedModel, family_of
from ..records import Chunk


class Pending(Protocol):
    """A batch a backend has started (``Backend.start``); ``result`` waits for its
    ``(B, frames, vocab)`` log-probabilities."""

    def result(self) -> np.ndarray: ...


class Done:
    """A batch computed at once (the CPU backends): ``result`` returns it."""

    __slots__ = ("_value",)

    def __init__(self, value: np.ndarray) -> None:
        self._value = value

    def result(self) -> np.ndarray:
        return self._value


class Started:
    """A batch ``Runner.submit`` has started: calling it waits for its log-probabilities;
    ``done`` says they are already computed (CPU backends), so waiting costs nothing."""

    __slots__ = ("_result", "done")

    def __init__(self, result: Callable[[], list[np.ndarray]], done: bool) -> None:
        self._result, self.done = result, done

    def __call__(self) -> list[np.ndarray]:
        return self._result()


class Backend(Protocol):
    """What runs the model: padded ``(B, T)`` float32 features and the true lengths in,
    ``(B, frames, vocab)`` float32 log-probabilities out.

    ``start`` hands a batch to the model and returns at once where the model runs on its
    own device (CUDA: copies and kernels are queued, and the host goes on preparing the
    next batch), or after computing it (CPU: ``Done``); ``log_probs`` is ``start`` then
    ``result``.

    ``needs_calibration``: the backend must see model inputs (``calibrate``) before it can
    run (int8 quantization calibrated on the input, ``quantize.py``); False for the rest,
    whose ``calibrate`` does nothing.
    """

    name: str
    precision: str
    on_cuda: bool
    threads: int

    @property
    def needs_calibration(self) -> bool: ...
    def calibrate(self, inputs: Sequence[np.ndarray]) -> None: ...
    def start(self, batch: np.ndarray, lengths: list[int]) -> Pending: ...
    def log_probs(self, batch: np.ndarray, lengths: list[int]) -> np.ndarray: ...
    def close(self) -> None: ...


def chunk_features(loaded: LoadedModel, samples: np.ndarray) -> tuple[np.ndarray, int]:
    """The feature extractor on one chunk alone (its normalisation is per chunk): the
    model's input and how many of its positions the mask keeps (``attention_mask``, or
    OmniASR's ``padding_mask``; all of them when the extractor returns none)."""
    fe = loaded.feature_extractor
    tensors = family_of(loaded.config).extractor_tensors if loaded.config is not None else "np"
    out = fe(samples, sampling_rate=loaded.sampling_rate, return_tensors=tensors)
    key = "input_features" if "input_features" in out else "input_values"
    values = np.asarray(_numpy(out[key][0]), dtype=np.float32)
    if key == "input_values":  # OmniASR's samples come as (1, samples): one channel
        values = values.reshape(-1)
    mask = out.get("attention_mask")
    if mask is None:
        mask = out.get("padding_mask")
    return values, int(_numpy(mask[0]).sum()) if mask is not None else values.shape[0]


def _numpy(value: object) -> np.ndarray:
    """A feature extractor's array (numpy, or a torch tensor where it returns only those)."""
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


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

    def features(self, samples: np.ndarray) -> tuple[np.ndarray, int]:
        """The feature extractor on one chunk alone (see ``chunk_features``)."""
        return chunk_features(self.loaded, samples)

    @property
    def needs_calibration(self) -> bool:
        return self.backend.needs_calibration

    def calibrate(self, chunks: Sequence[Chunk]) -> None:
        """Give the backend these chunks' model inputs to calibrate on (see ``Backend``)."""
        live = [c for c in chunks if c.length >= self.min_samples]
        self.backend.calibrate([self.features(c.samples)[0] for c in live])

    def frames_for(self, num_samples: Sequence[int]) -> list[int]:
        """Frames the model outputs for inputs of these lengths (0 for too-short inputs)."""
        return [self.loaded.output_frames(n) for n in num_samples]

    @property
    def min_samples(self) -> int:
        """The shortest input that gives one output frame (the convolutions' receptive
        field: 400 samples, 25 ms, for wav2vec2; two filterbank frames, 560 samples, for
        W2V-BERT, whose per-bin normalisation needs two). Shorter chunks give no frames and
        are not run: the model would fail on them (the chunker merges a tail this short
        into the chunk before it)."""
        if self._min_samples is None:
            n = 1
            while self.loaded.output_frames(n) < 1:
                n += 1
            self._min_samples = n
        return self._min_samples

    def run(self, chunks: Sequence[Chunk]) -> list[np.ndarray]:
        """Log-probabilities ``(frames, vocab)`` for each chunk, padding frames removed."""
        return self.submit(chunks)()

    def submit(
        self,
        chunks: Sequence[Chunk],
        features: Sequence[tuple[np.ndarray, int] | None] | None = None,
    ) -> Started:
        """Start ``chunks`` on the backend (``Backend.start``) and return what waits for
        ``run``'s result: on CUDA the host can prepare the next batch, or finish the last
        one's files, while the GPU computes this one. ``features``: each chunk's
        ``features``, where they were computed ahead (None: computed here)."""
        vocab = self.loaded.vocabulary.size
        out: list[np.ndarray] = [np.zeros((0, vocab), np.float32) for _ in chunks]
        live = [i for i, c in enumerate(chunks) if c.length >= self.min_samples]
        ahead = features or [None] * len(chunks)
        feats = {i: ahead[i] or self.features(chunks[i].samples) for i in live}
        if not live:
            groups: list[list[int]] = []
        elif self.loaded.padding_exact:
            groups = [live]
        else:  # one backend call per input shape: no padding at all
            shapes: dict[tuple[int, int], list[int]] = {}
            for i in live:
                shapes.setdefault((feats[i][0].shape[0], feats[i][1]), []).append(i)
            groups = list(shapes.values())
        started: list[tuple[list[int], Pending]] = []
        for group in groups:
            values = [feats[i][0] for i in group]
            if len(values) == 1:  # nothing to pad: the features themselves, not a copy
                batch = np.ascontiguousarray(values[0], dtype=np.float32)[np.newaxis]
            else:
                width = max(v.shape[0] for v in values)
                batch = np.zeros((len(values), width, *values[0].shape[1:]), dtype=np.float32)
                for row, v in enumerate(values):
                    batch[row, : v.shape[0]] = v
            started.append((group, self.backend.start(batch, [feats[i][1] for i in group])))
        del feats
        frames = [self.loaded.output_frames(c.length) for c in chunks]

        def result() -> list[np.ndarray]:
            for group, pending in started:
                log_probs = pending.result()
                for row, i in enumerate(group):
                    out[i] = log_probs[row, : frames[i]]
            return out

        return Started(result, all(isinstance(p, Done) for _, p in started))

    def close(self) -> None:
        self.backend.close()
