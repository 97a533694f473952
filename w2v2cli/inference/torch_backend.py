"""The PyTorch backend: the transformers model itself, on CPU or CUDA.

Exact batching (``exact.py``) lives here: with it on, a padded batch gives every item its
unbatched log-probabilities, so results never depend on the batch size. For families whose
layers let padding through whatever the mask (``models/families.py``: conformer, SEW,
Data2Vec audio), rows of different lengths are run as separate calls, one per length, as
the OpenVINO backend always does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models import LoadedModel
from .exact import set_batch_exact


class TorchBackend:
    """Runs padded batches through ``loaded.model``; returns log-probabilities in numpy."""

    name = "torch"

    def __init__(self, loaded: LoadedModel, *, exact: bool = True, threads: int | None = None):
        import torch

        self._torch = torch
        self.model = loaded.model
        self.device = loaded.device
        self.precision = loaded.dtype
        self._dtype = getattr(torch, loaded.dtype)
        self.exact = exact
        self.patched = set_batch_exact(loaded.model, exact)
        # Without exact batching a mask is passed only when the feature extractor asks
        # for one (plain padding, as the transformers pipeline does; benchmarks only).
        self.use_mask = exact or loaded.wants_attention_mask
        self.equal_lengths_only = exact and not loaded.padding_exact
        self.on_cuda = loaded.device.startswith("cuda")
        if threads and not self.on_cuda:
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads()

    def log_probs(self, batch: np.ndarray, lengths: list[int]) -> np.ndarray:
        """``(B, frames, vocab)`` float32 log-probabilities of a zero-padded batch."""
        if self.equal_lengths_only and len(set(lengths)) > 1:
            return self._by_length(batch, lengths)
        return self._run(batch, lengths)

    def _by_length(self, batch: np.ndarray, lengths: list[int]) -> np.ndarray:
        """One call per length, no padding in any; outputs padded back to one array."""
        groups: dict[int, list[int]] = {}
        for row, n in enumerate(lengths):
            groups.setdefault(n, []).append(row)
        parts = {n: self._run(np.ascontiguousarray(batch[rows, :n]), [n] * len(rows))
                 for n, rows in groups.items()}  # fmt: skip
        frames = max(p.shape[1] for p in parts.values())
        vocab = next(iter(parts.values())).shape[2]
        out = np.zeros((batch.shape[0], frames, vocab), np.float32)
        for n, rows in groups.items():
            out[rows, : parts[n].shape[1]] = parts[n]
        return out

    def _run(self, batch: np.ndarray, lengths: list[int]) -> np.ndarray:
        torch = self._torch
        width = batch.shape[1]
        with torch.inference_mode():
            inputs = torch.from_numpy(batch).to(self.device, self._dtype)
            kwargs: dict[str, Any] = {}
            if self.use_mask:
                mask = torch.from_numpy(np.arange(width)[None, :] < np.array(lengths)[:, None])
                kwargs["attention_mask"] = mask.to(self.device, torch.long)
            logits = self.model(inputs, **kwargs).logits
            return torch.log_softmax(logits.float(), dim=-1).cpu().numpy()

    def close(self) -> None:
        self.model = None
