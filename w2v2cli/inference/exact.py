"""Exact batched inference: a padded batch gives each item its unbatched log-probabilities.

Why plain padding is not exact: in ``feat_extract_norm="group"`` models (wav2vec2-base and
its fine-tunes, HuBERT/WavLM base) the first convolution is followed by a GroupNorm with
one group per channel, i.e. mean and variance over *time*, so padding zeros enter every
shorter item's statistics; and without an attention mask padded frames also reach the
positional convolution and the attention.

What we do, without copying model code: we wrap the one part that needs it, the
convolutional feature encoder (``model.base_model.feature_extractor``), so that when the
model is called with an ``attention_mask`` each item's samples run through the encoder on
their own, unpadded: exactly the unbatched computation, whatever the normalisation. The
outputs are padded back to the batch's frame count and the model carries on as usual; the
encoder zeroes padded frames before the positional convolution and masks attention, and
later layers are per-frame or masked. Lengths come from the mask through a forward
pre-hook, so any caller that passes ``attention_mask`` benefits; a caller that knows them
on the host says so first (``expect_lengths``), which spares a CUDA mask the
device-to-host copy that would make the host wait for the GPU's previous work.

On CPU this is also faster and much lighter than running the encoder on the padded batch:
the first layer's output is 512 channels at 3.2 kHz (131 MB per 20 s item in float32), and
streaming one item at a time through the convolutions keeps that in cache-sized pieces
instead of a gigabyte-sized tensor per batch (see benchmarks/RESULTS.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
from torch import nn

from ..models.native import run_itemwise

log = logging.getLogger("w2v2cli")


class ItemwiseFeatureEncoder(nn.Module):
    """Runs the wrapped feature encoder on each item's first ``valid_lengths[i]`` samples."""

    def __init__(self, encoder: nn.Module, output_length: Callable[[int], int]) -> None:
        super().__init__()
        self.encoder = encoder
        self._output_length = output_length
        self.valid_lengths: list[int] | None = None
        self.expected: list[int] | None = None  # the next call's lengths, from the host
        self.enabled = True

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        lengths = self.valid_lengths
        width = input_values.shape[-1]
        if not self.enabled or lengths is None or (len(lengths) == 1 and lengths[0] >= width):
            return self.encoder(input_values)  # a single unpadded item: as unbatched
        return run_itemwise(self.encoder, input_values, lengths, int(self._output_length(width)))


def expect_lengths(model: nn.Module, lengths: list[int]) -> None:
    """Tell the wrapped encoder the lengths the next call's mask holds (``make_batch_exact``),
    so that it need not read them from the mask; nothing happens without the wrapper."""
    wrapper = getattr(model.base_model, "feature_extractor", None)
    if isinstance(wrapper, ItemwiseFeatureEncoder):
        wrapper.expected = list(lengths)


def set_batch_exact(model: nn.Module, enabled: bool) -> bool:
    """Switch exact batching on (wrapping the encoder once) or off; True if it is on."""
    if not enabled:
        wrapper = getattr(model.base_model, "feature_extractor", None)
        if isinstance(wrapper, ItemwiseFeatureEncoder):
            wrapper.enabled = False
        return False
    return make_batch_exact(model)


def make_batch_exact(model: nn.Module) -> bool:
    """Wrap the model's feature encoder so padded batches give unbatched results.

    Returns True when the wrapper is in place (idempotent), False when the model has no
    feature encoder where transformers keeps it for wav2vec2-family models, in which case a
    warning says that transcripts may depend on the batch size for group-norm models.
    """
    base = model.base_model
    encoder = getattr(base, "feature_extractor", None)
    if isinstance(encoder, ItemwiseFeatureEncoder):
        encoder.enabled = True
        return True
    if not isinstance(encoder, nn.Module) or not hasattr(base, "_get_feat_extract_output_lengths"):
        if getattr(model.config, "feat_extract_norm", None) == "group":
            log.warning(
                "group-norm model, but its feature encoder is not where this transformers "
                "version was expected to keep it: exact batching is off, so transcripts "
                "may depend on --batch-size"
            )
        return False

    def output_length(samples: int) -> int:
        return int(base._get_feat_extract_output_lengths(torch.tensor(samples)))

    wrapper = ItemwiseFeatureEncoder(encoder, output_length)
    base.feature_extractor = wrapper

    def set_lengths(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1:
            mask = args[1]
        expected, wrapper.expected = wrapper.expected, None
        if mask is None:
            wrapper.valid_lengths = None
        elif expected is not None and len(expected) == mask.shape[0]:
            wrapper.valid_lengths = expected
        else:
            wrapper.valid_lengths = mask.sum(-1).tolist()

    def clear(_module: nn.Module, _args: tuple, _kwargs: dict, _out: object) -> None:
        wrapper.valid_lengths = None
        wrapper.expected = None

    model.register_forward_pre_hook(set_lengths, with_kwargs=True)
    model.register_forward_hook(clear, with_kwargs=True)
    return True
