"""Exact batched inference for group-norm feature encoders (wav2vec2-base and kin).

In ``feat_extract_norm="group"`` models the first convolution is followed by a GroupNorm
with one group per channel, i.e. mean and variance over *time*. In a padded batch those
statistics include the padding, so an utterance's output depends on what it was batched
with. We patch that one layer, keyed on the config: when the model is called with an
``attention_mask``, each item is normalised over its own valid frames only (with the very
same ``group_norm`` kernel an unbatched call uses). Everything after it is already exact
given the mask: later convolutions produce valid frames only from valid inputs, the
encoder zeroes padded frames before the positional convolution and masks attention.

The patch swaps the GroupNorm for a subclass sharing the same parameters (state-dict keys
unchanged) and reads lengths from the mask through a forward pre-hook, so no model code
is copied and any caller that passes ``attention_mask`` benefits.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

log = logging.getLogger("w2v2cli")


class MaskedGroupNorm(nn.GroupNorm):
    """GroupNorm whose statistics cover each item's first ``valid_lengths[i]`` frames."""

    valid_lengths: torch.Tensor | None = None

    @classmethod
    def from_group_norm(cls, norm: nn.GroupNorm) -> MaskedGroupNorm:
        new = cls.__new__(cls)
        nn.Module.__init__(new)
        new.num_groups = norm.num_groups
        new.num_channels = norm.num_channels
        new.eps = norm.eps
        new.affine = norm.affine
        new.weight = norm.weight
        new.bias = norm.bias
        new.valid_lengths = None
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        lengths = self.valid_lengths
        if lengths is None or bool((lengths >= x.shape[-1]).all()):
            return super().forward(x)  # nothing padded: the plain kernel, as unbatched
        out = torch.zeros_like(x)
        for i, n in enumerate(lengths.tolist()):
            n = max(1, min(int(n), x.shape[-1]))
            out[i : i + 1, :, :n] = F.group_norm(
                x[i : i + 1, :, :n].contiguous(), self.num_groups, self.weight, self.bias, self.eps
            )
        return out


def _conv_out_length(length: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    return torch.div(length - kernel, stride, rounding_mode="floor") + 1


def make_batch_exact(model: nn.Module) -> bool:
    """Patch a group-norm CTC model so padded batches give unbatched results.

    Returns True when a patch was applied (group-norm feature encoder), False when the model
    needs none (layer-norm encoders are exact with an attention mask already). Idempotent.
    """
    config = model.config
    if getattr(config, "feat_extract_norm", None) != "group":
        return False
    encoder = getattr(model.base_model, "feature_extractor", None)
    layers = getattr(encoder, "conv_layers", None)
    first = layers[0] if layers else None
    norm = getattr(first, "layer_norm", None)
    if isinstance(norm, MaskedGroupNorm):
        return True
    if not isinstance(norm, nn.GroupNorm):
        log.warning(
            "group-norm model, but its first feature-encoder layer is not where this "
            "transformers version was expected to keep it: exact batching is off, so "
            "transcripts may depend on --batch-size"
        )
        return False
    masked = MaskedGroupNorm.from_group_norm(norm)
    first.layer_norm = masked
    kernel, stride = int(config.conv_kernel[0]), int(config.conv_stride[0])

    def set_lengths(_module: nn.Module, args: tuple, kwargs: dict) -> None:
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1:
            mask = args[1]
        if mask is None:
            masked.valid_lengths = None
        else:
            masked.valid_lengths = _conv_out_length(mask.sum(-1).long(), kernel, stride)

    def clear(_module: nn.Module, _args: tuple, _kwargs: dict, _out: object) -> None:
        masked.valid_lengths = None

    model.register_forward_pre_hook(set_lengths, with_kwargs=True)
    model.register_forward_hook(clear, with_kwargs=True)
    return True
