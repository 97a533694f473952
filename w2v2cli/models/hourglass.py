"""wav2vec 2.0 with NVIDIA's Hourglass Transformer encoder, on transformers' own layers.

NVIDIA DeepLearningExamples (``PyTorch/SpeechRecognition/wav2vec2``) trains wav2vec 2.0
with an hourglass encoder, ``hourglass_transformer "[n_pre,(n_short,factor),n_post]"``:
``n_pre`` ordinary layers; the sequence shortened by ``factor`` (zero-padded to a multiple
of it, then ``naive``: average pooling, or ``linear``: a linear layer over the stacked
frames); ``n_short`` layers on the short sequence; upsampled (``naive``: each frame
repeated, ``linear``: a linear layer), trimmed, the pre-shortening output added back;
then ``n_post`` layers. Everything else is wav2vec 2.0 with post-layer-norm layers.

This module adds only that shortening and upsampling to transformers'
``Wav2Vec2Encoder`` (its positional convolution, layer norm and ``Wav2Vec2EncoderLayer``
are reused as they are), with batch masks: before shortening, frames past an item's
length are zeroed, which is what the item alone sees (its zero padding to a multiple of
``factor``), and a short frame is attended to when any of its ``factor`` frames is real,
as NVIDIA's mask (``avg_pool1d`` of the padding mask, ``.int() > 0``) says for an item
alone. So a padded batch gives every item its unbatched result.

The model type is this package's own (``MODEL_TYPE``), so that transformers alone
refuses such a folder instead of loading it as a plain wav2vec2 model and silently
dropping the hourglass layers; ``register()`` makes the Auto classes know it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForCTC, Wav2Vec2Config, Wav2Vec2ForCTC
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.wav2vec2.modeling_wav2vec2 import (
    Wav2Vec2EncoderLayer,
    Wav2Vec2PositionalConvEmbedding,
)

from .checkpoints import HOURGLASS_MODEL_TYPE as MODEL_TYPE

RESAMPLE_MODES = ("naive", "linear")


class Wav2Vec2HourglassConfig(Wav2Vec2Config):
    """``Wav2Vec2Config`` plus the hourglass shape: ``hourglass_layers = (n_pre, n_short,
    n_post)``, ``hourglass_factor`` and ``hourglass_resample`` (``naive`` or ``linear``)."""

    model_type = MODEL_TYPE

    def __init__(
        self,
        hourglass_layers: tuple[int, int, int] | list[int] = (2, 8, 2),
        hourglass_factor: int = 4,
        hourglass_resample: str = "naive",
        **kwargs,
    ) -> None:
        self.hourglass_layers = [int(n) for n in hourglass_layers]
        self.hourglass_factor = int(hourglass_factor)
        self.hourglass_resample = hourglass_resample
        kwargs["num_hidden_layers"] = sum(self.hourglass_layers)
        super().__init__(**kwargs)
        if len(self.hourglass_layers) != 3 or min(self.hourglass_layers) < 0:
            raise ValueError(
                f"hourglass_layers must be (n_pre, n_short, n_post), not {hourglass_layers!r}"
            )
        if self.hourglass_factor < 1:
            raise ValueError("hourglass_factor must be at least 1")
        if hourglass_resample not in RESAMPLE_MODES:
            raise ValueError(
                f"hourglass_resample must be naive or linear, not {hourglass_resample!r}"
            )
        if self.do_stable_layer_norm:
            raise ValueError("the hourglass encoder has post-layer-norm layers only")


class Resample(nn.Module):
    """NVIDIA's ``Downsampler``/``Upsampler`` on ``(batch, time, channels)``."""

    def __init__(self, dim: int, factor: int, mode: str, down: bool) -> None:
        super().__init__()
        self.factor = factor
        self.down = down
        self.linear = None
        if mode == "linear":
            self.linear = nn.Linear(dim * factor, dim) if down else nn.Linear(dim, dim * factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, frames, dim = x.shape
        if self.down:
            if self.linear is not None:
                return self.linear(x.reshape(batch, frames // self.factor, dim * self.factor))
            pooled = F.avg_pool1d(x.transpose(1, 2), self.factor, self.factor)
            return pooled.transpose(1, 2)
        if self.linear is not None:
            return self.linear(x).reshape(batch, frames * self.factor, dim)
        return x.repeat_interleave(self.factor, dim=1)


class Wav2Vec2HourglassEncoder(nn.Module):
    """``Wav2Vec2Encoder`` (post-layer-norm) with the hourglass in place of one stack."""

    def __init__(self, config: Wav2Vec2HourglassConfig) -> None:
        super().__init__()
        self.config = config
        n_pre, n_short, n_post = config.hourglass_layers
        self.factor = config.hourglass_factor
        self.pos_conv_embed = Wav2Vec2PositionalConvEmbedding(config)
        self.layer_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout)
        self.layers = nn.ModuleList([Wav2Vec2EncoderLayer(config) for _ in range(n_pre)])
        self.hourglass_layers = nn.ModuleList(
            [Wav2Vec2EncoderLayer(config) for _ in range(n_short)]
        )
        self.post_layers = nn.ModuleList([Wav2Vec2EncoderLayer(config) for _ in range(n_post)])
        mode = config.hourglass_resample
        self.downsample = Resample(config.hidden_size, self.factor, mode, down=True)
        self.upsample = Resample(config.hidden_size, self.factor, mode, down=False)
        self.gradient_checkpointing = False

    def _run(
        self, layers: nn.ModuleList, hidden: torch.Tensor, mask: torch.Tensor | None, **kwargs
    ) -> torch.Tensor:
        for layer in layers:
            if self.training and self.config.layerdrop > 0.0:
                if torch.rand([]) < self.config.layerdrop:
                    continue
            hidden = layer(hidden, attention_mask=mask, **kwargs)
        return hidden

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, **kwargs
    ) -> BaseModelOutput:
        keep = attention_mask.bool() if attention_mask is not None else None
        if keep is not None:
            hidden_states = hidden_states.masked_fill(~keep[..., None], 0.0)
        mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=hidden_states, attention_mask=keep
        )
        hidden_states = hidden_states + self.pos_conv_embed(hidden_states)
        hidden_states = self.dropout(self.layer_norm(hidden_states))
        hidden_states = self._run(self.layers, hidden_states, mask, **kwargs)

        residual = hidden_states
        frames = hidden_states.shape[1]
        pad = (self.factor - frames % self.factor) % self.factor
        short = hidden_states
        short_keep = None
        if keep is not None:
            short = short.masked_fill(~keep[..., None], 0.0)  # what an item alone sees
            padded = F.pad(keep, (0, pad), value=False)
            short_keep = padded.view(padded.shape[0], -1, self.factor).any(-1)
        short = F.pad(short, (0, 0, 0, pad))
        short = self.downsample(short)
        short_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=short, attention_mask=short_keep
        )
        short = self._run(self.hourglass_layers, short, short_mask, **kwargs)
        hidden_states = self.upsample(short)[:, :frames] + residual
        hidden_states = self._run(self.post_layers, hidden_states, mask, **kwargs)
        return BaseModelOutput(last_hidden_state=hidden_states)


class Wav2Vec2HourglassForCTC(Wav2Vec2ForCTC):
    """``Wav2Vec2ForCTC`` whose encoder is the hourglass: the same feature encoder,
    projection, CTC head, weight names and ``forward``."""

    config_class = Wav2Vec2HourglassConfig
    config: Wav2Vec2HourglassConfig

    def __init__(self, config: Wav2Vec2HourglassConfig, target_lang: str | None = None):
        super().__init__(config, target_lang=target_lang)
        self.wav2vec2.encoder = Wav2Vec2HourglassEncoder(config)
        self.post_init()


_registered = False


def register() -> None:
    """Make ``AutoConfig`` and ``AutoModelForCTC`` know the hourglass model (idempotent)."""
    global _registered
    if _registered:
        return
    AutoConfig.register(MODEL_TYPE, Wav2Vec2HourglassConfig, exist_ok=True)
    AutoModelForCTC.register(Wav2Vec2HourglassConfig, Wav2Vec2HourglassForCTC, exist_ok=True)
    _registered = True
