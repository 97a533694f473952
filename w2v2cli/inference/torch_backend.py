"""The PyTorch backend: the transformers model itself, on CPU or CUDA.

Exact batching (``exact.py``) lives here: with it on, a padded batch gives every item its
unbatched log-probabilities, so results never depend on the batch size.
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
        self.on_cuda = loaded.device.startswith("cuda")
        if threads and not self.on_cuda:
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads()

    def log_probs(self, batch: np.ndarray, lengths: list[int]) -> np.ndarray:
        """``(B, frames, vocab)`` float32 log-probabilities of a zero-padded batch."""
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
