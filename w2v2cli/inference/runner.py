"""Run batches of chunks through a loaded model: ``Chunk``s in, log-probabilities out.

The only module that knows about devices, dtypes, padding and attention masks. It turns
``Chunk``s into per-chunk log-probabilities holding exactly the frames each chunk's real
samples produce; it never decodes text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..models import LoadedModel
from ..records import Chunk
from .exact import set_batch_exact


class Runner:
    """Runs batches of chunks; one per engine, around its own ``LoadedModel``.

    ``exact=True`` (the default) makes results independent of batching: each item runs
    through the convolutional feature encoder on its own (``exact.py``) and every model gets
    an attention mask from the true lengths. ``exact=False`` is plain padding: the encoder
    sees the padded batch, and a mask is passed only when the feature extractor asks for
    one (kept for benchmarks). The transformers 5 pipeline always passes a mask, so its
    batch dependence comes from the group norm seeing the padding alone.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        exact: bool = True,
        max_padding: float | None = None,
        batch_size: int | None = None,
    ) -> None:
        self.loaded = loaded
        self.exact = exact
        self.patched = set_batch_exact(loaded.model, exact)
        self.use_mask = exact or loaded.wants_attention_mask
        # How much padding a chunk may bring into a batch (see chunking.plan_batches). On
        # CPU a batch is no faster than its items one by one (benchmarks/RESULTS.md), so
        # only chunks of equal length share one; on CUDA batching is the speed.
        on_cuda = loaded.device.type == "cuda"
        if max_padding is None:
            max_padding = 1.0 if on_cuda else 0.0
        self.max_padding = max_padding
        self.batch_size = batch_size or (8 if on_cuda else 1)
        self._min_samples: int | None = None

    def features(self, samples: np.ndarray) -> np.ndarray:
        """The feature extractor on one chunk alone (its normalisation is per chunk)."""
        fe = self.loaded.feature_extractor
        out = fe(samples, sampling_rate=self.loaded.sampling_rate, return_tensors="np")
        return np.asarray(out["input_values"][0], dtype=np.float32)

    def frames_for(self, num_samples: Sequence[int]) -> list[int]:
        """Frames the model outputs for inputs of these lengths (0 for too-short inputs)."""
        import torch

        lengths = self.loaded.model._get_feat_extract_output_lengths(
            torch.tensor(list(num_samples), dtype=torch.long)
        )
        return [max(0, int(n)) for n in lengths.tolist()]

    @property
    def min_samples(self) -> int:
        """The shortest input that gives one output frame (the convolutions' receptive
        field: 400 samples, 25 ms, for wav2vec2). Shorter chunks give no frames and are not
        run: the convolutions would fail on them."""
        if self._min_samples is None:
            n = 1
            while self.frames_for([n])[0] < 1:
                n *= 2
            low, high = n // 2, n
            while low + 1 < high:
                mid = (low + high) // 2
                low, high = (mid, high) if self.frames_for([mid])[0] < 1 else (low, mid)
            self._min_samples = high
        return self._min_samples

    def run(self, chunks: Sequence[Chunk]) -> list[np.ndarray]:
        """Log-probabilities ``(frames, vocab)`` for each chunk, padding frames removed."""
        import torch

        vocab = self.loaded.vocabulary.size
        out: list[np.ndarray] = [np.zeros((0, vocab), np.float32) for _ in chunks]
        live = [i for i, c in enumerate(chunks) if c.length >= self.min_samples]
        if not live:
            return out
        feats = [self.features(chunks[i].samples) for i in live]
        lengths = [f.shape[0] for f in feats]
        width = max(lengths)
        batch = np.zeros((len(feats), width), dtype=np.float32)
        for row, f in enumerate(feats):
            batch[row, : f.shape[0]] = f
        model = self.loaded.model
        with torch.inference_mode():
            inputs = torch.from_numpy(batch).to(self.loaded.device, self.loaded.dtype)
            kwargs: dict[str, Any] = {}
            if self.use_mask:
                mask = torch.from_numpy(np.arange(width)[None, :] < np.array(lengths)[:, None])
                kwargs["attention_mask"] = mask.to(self.loaded.device, torch.long)
            logits = model(inputs, **kwargs).logits
            log_probs = torch.log_softmax(logits.float(), dim=-1).cpu().numpy()
        frames = self.frames_for(lengths)
        for row, i in enumerate(live):
            out[i] = log_probs[row, : frames[row]]
        return out
