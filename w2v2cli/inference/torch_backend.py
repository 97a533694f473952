"""The PyTorch backend: the model on CPU or CUDA, as transformers computes it.

The model is this package's own copy of a standard wav2vec2 CTC model on the CPU
(``models/native.py``: the same torch calls, no transformers import), transformers' model
otherwise. Exact batching lives here (``exact.py``, built into the native model): with it
on, a padded batch gives every item its unbatched log-probabilities, so results never
depend on the batch size.

On CUDA a batch is *started*, not waited for (``start``): the samples go through
page-locked (pinned) host memory, so the copy to the GPU is queued like a kernel instead
of making the host wait for the GPU's previous batch; the model and the softmax run on the
GPU; the log-probabilities come back the same way, into pinned memory, behind a CUDA
event. Nothing in between reads a GPU value on the host (the exact encoder gets the
lengths from the host: ``exact.expect_lengths``), so the host prepares the next batch, and
finishes the last one's files, while the GPU computes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models import LoadedModel, family_of
from ..models.native import NativeWav2Vec2ForCTC
from .exact import expect_lengths, set_batch_exact
from .runner import Done, Pending


class TorchBackend:
    """Runs padded batches through ``loaded.model``; returns log-probabilities in numpy."""

    name = "torch"
    needs_calibration = False

    def __init__(self, loaded: LoadedModel, *, exact: bool = True, threads: int | None = None):
        import torch

        self._torch = torch
        self.model = loaded.model
        self.device = loaded.device
        self.precision = loaded.dtype
        self._dtype = getattr(torch, loaded.dtype)
        self.exact = exact
        # This package's own wav2vec2 (models/native.py) batches exactly by itself.
        self.native = isinstance(loaded.model, NativeWav2Vec2ForCTC)
        if self.native:
            loaded.model.itemwise = exact
        # patched: exact batching is on (the runner pads batches only then)
        self.patched = exact if self.native else set_batch_exact(loaded.model, exact)
        # Without exact batching a mask is passed only when the feature extractor asks
        # for one (plain padding, as the transformers pipeline does; benchmarks only).
        self.use_mask = exact or loaded.wants_attention_mask
        family = family_of(loaded.config)
        self.mask_name = family.mask  # OmniASR's is padding_mask
        self.channel_axis = family.channel_axis  # OmniASR takes (batch, 1, samples)
        self.on_cuda = loaded.device.startswith("cuda")
        if threads and not self.on_cuda:
            torch.set_num_threads(threads)
        self.threads = torch.get_num_threads()

    def calibrate(self, inputs: object) -> None:
        """Nothing to calibrate (int8 runs on OpenVINO)."""

    def log_probs(self, batch: np.ndarray, lengths: list[int]) -> np.ndarray:
        """``(B, frames, vocab)`` float32 log-probabilities of a zero-padded batch."""
        return self.start(batch, lengths).result()

    def start(self, batch: np.ndarray, lengths: list[int]) -> Pending:
        """Run a zero-padded batch: on CPU at once (``Done``); on CUDA queued on the
        current stream, its result waited for by ``result`` (see the module docstring)."""
        torch = self._torch
        width = batch.shape[1]
        with torch.inference_mode():
            host = torch.from_numpy(batch)
            if self.channel_axis:
                host = host.unsqueeze(1)
            kwargs: dict[str, Any] = {}
            if self.native:
                if self.use_mask:
                    kwargs["lengths"] = list(lengths)
            elif self.use_mask:
                kwargs[self.mask_name] = torch.from_numpy(
                    np.arange(width)[None, :] < np.array(lengths)[:, None]
                ).long()
            if not self.on_cuda:
                logits = self._forward(host.to(self._dtype), kwargs, lengths).logits
                return Done(torch.log_softmax(logits.float(), dim=-1).numpy())
            with torch.cuda.device(self.device):  # the events and streams of this GPU
                inputs = _to_device(host, self.device).to(self._dtype)
                kwargs = {
                    k: _to_device(v, self.device) if isinstance(v, torch.Tensor) else v
                    for k, v in kwargs.items()
                }
                logits = self._forward(inputs, kwargs, lengths).logits
                log_probs = torch.log_softmax(logits.float(), dim=-1)
                out = torch.empty(log_probs.shape, dtype=torch.float32, pin_memory=True)
                out.copy_(log_probs, non_blocking=True)
                # blocking: a host waiting for it sleeps instead of spinning on a core
                done = torch.cuda.Event(blocking=True)
                done.record()
            return _OnDevice(out, done)

    def _forward(self, inputs: Any, kwargs: dict[str, Any], lengths: list[int]) -> Any:
        """The model on one batch; the exact encoder is told the lengths just before."""
        if self.patched and not self.native:
            expect_lengths(self.model, lengths)
        return self.model(inputs, **kwargs)

    def close(self) -> None:
        self.model = None


def _to_device(tensor: Any, device: str) -> Any:
    """A CPU tensor copied to ``device`` without making the host wait: through pinned
    memory (torch's pinned-memory cache keeps the block until the copy has run)."""
    return tensor.pin_memory().to(device, non_blocking=True)


class _OnDevice:
    """A batch queued on the GPU: its log-probabilities land in ``out`` (pinned host
    memory) once ``done`` (a CUDA event after the copy) has fired."""

    __slots__ = ("_out", "_done")

    def __init__(self, out: Any, done: Any) -> None:
        self._out, self._done = out, done

    def result(self) -> np.ndarray:
        self._done.synchronize()
        return self._out.numpy()
