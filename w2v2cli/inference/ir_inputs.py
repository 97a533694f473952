"""What an OpenVINO IR of a converted model takes, and the adapter that feeds it.

Every IR this tool converts takes one 2-D float input, ``(batch, values)``, like a
wav2vec2 model's samples; families whose models take something else are wrapped before
tracing (``ir_cache.convert``): Omnilingual ASR's ``(batch, 1, samples)`` behind
``with_channel_axis``, and the log-mel models (Parakeet CTC, LASR) behind
``with_flat_frames``, whose frames the IR takes flattened. ``FlatFrames`` is the backend
around such an IR that turns the runner's ``(batch, frames, bins)`` features into those
rows (``with_model_input``).
"""

from __future__ import annotations

from typing import Any

from ..models import LoadedModel, family_of
from .openvino_backend import OpenVINOBackend

#: Frames of the example input a log-mel model is traced with (2 s at a 10 ms hop).
MEL_EXAMPLE_FRAMES = 200


def mel_bins(parts: LoadedModel) -> int:
    """The mel bins of a log-mel model's frames (its feature extractor's ``feature_size``)."""
    return int(getattr(parts.feature_extractor, "feature_size", 0) or 80)


def with_flat_frames(model: Any, bins: int, torch: Any) -> Any:
    """A log-mel model (Parakeet CTC, LASR) wrapped so that its IR takes its frames
    flattened, ``(batch, frames x bins)``: every IR then takes one 2-D float input, which
    ``FlatFrames`` feeds. No mask: the IR runs each item unpadded, and a Parakeet chunk's
    frames without the one its extractor masks give what the masked frames give (the
    padded subsampling and the convolution module see zeros past the end either way)."""

    class WithFlatFrames(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_values: Any) -> Any:
            frames = input_values.reshape(input_values.shape[0], -1, bins)
            return self.inner(frames).logits

    return WithFlatFrames(model).eval()


class FlatFrames:
    """A backend around an IR of ``with_flat_frames``: the runner's ``(batch, frames,
    bins)`` features and frame counts in, as ``(batch, frames x bins)`` rows and their
    value counts to the IR's backend; everything else is that backend's."""

    def __init__(self, inner: Any, bins: int) -> None:
        self._inner = inner
        self._bins = bins

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def start(self, batch: Any, lengths: list[int]) -> Any:
        flat = batch.reshape(batch.shape[0], -1)
        return self._inner.start(flat, [n * self._bins for n in lengths])

    def log_probs(self, batch: Any, lengths: list[int]) -> Any:
        return self.start(batch, lengths).result()

    def calibrate(self, inputs: Any) -> None:
        self._inner.calibrate([x.reshape(-1) for x in inputs])

    def close(self) -> None:
        self._inner.close()


def with_model_input(parts: LoadedModel, backend: OpenVINOBackend) -> OpenVINOBackend | FlatFrames:
    """``backend`` as the runner feeds it: behind ``FlatFrames`` for a log-mel model."""
    if family_of(parts.config).input == "mel":
        return FlatFrames(backend, mel_bins(parts))
    return backend


def with_channel_axis(model: Any, torch: Any) -> Any:
    """A model that takes samples with a channel axis (``(batch, 1, samples)``, OmniASR's),
    wrapped so that its IR takes ``(batch, samples)`` as every other family's does; it
    returns the logits."""

    class WithChannelAxis(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_values: Any) -> Any:
            return self.inner(input_values.unsqueeze(1)).logits

    return WithChannelAxis(model).eval()
