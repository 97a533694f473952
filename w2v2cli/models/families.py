"""What each supported model family needs from the rest of the tool, in one table.

A family is a transformers ``model_type`` (or this package's own, for the hourglass). For
each: what the model reads (``waveform``: samples through a convolutional front end;
``fbank``: W2V-BERT's 80-bin filterbank frames, stacked in pairs), how many output frames
an input of ``n`` samples gives (``output_frames``), whether OpenVINO runs it, and
whether a padded batch, run with the attention mask and the item-wise feature encoder
(``inference/exact.py``), gives every item its unbatched result (``padding_exact``).
Where it does not, only items of equal length share a model call (``inference/runner.py``),
which keeps results independent of the batch:

- **wav2vec2-conformer**: the conformer's depthwise convolution (``conv_module``) ignores
  the attention mask, so the padded frames' values reach the last real frames (W2V-BERT's
  conformer masks it, and pads exactly);
- **sew**, **sew-d**: the encoder average-pools frames in groups (``squeeze_factor``)
  without a mask, and an item alone drops the frames that do not fill a group, so a
  padded item pools frames its unpadded self never sees;
- **data2vec-audio**: padded frames are zeroed only before the first of its stacked
  positional convolutions; from the second on, their (non-zero) values reach real frames;
- any model with an **adapter** (``add_adapter``: strided convolutions after the encoder,
  W2V-BERT's included): the convolutions see past an item's end without a mask.

Families not in the table are treated as not padding-exact: correct, if slower on CUDA.
MMS models (wav2vec2 with per-language attention adapters, ``adapter_attn_dim``) run on
the torch backend: an OpenVINO IR is cached per model, not per language.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .checkpoints import HOURGLASS_MODEL_TYPE

#: W2V-BERT's filterbank (``SeamlessM4TFeatureExtractor``): 25 ms windows every 10 ms,
#: frames stacked in pairs. Normalisation per mel bin needs at least two frames.
FBANK_WINDOW = 400
FBANK_HOP = 160
FBANK_STACK = 2
FBANK_MIN_FRAMES = 2


@dataclass(frozen=True)
class Family:
    """One model family: its name for people, its input, and what batching it allows."""

    model_type: str
    name: str
    padding_exact: bool
    input: str = "waveform"  # or "fbank"
    openvino: bool = True


FAMILIES: dict[str, Family] = {
    f.model_type: f
    for f in (
        Family("wav2vec2", "wav2vec 2.0 (XLSR, XLS-R, MMS)", True),
        Family(HOURGLASS_MODEL_TYPE, "wav2vec 2.0 with NVIDIA's Hourglass Transformer", True),
        Family("hubert", "HuBERT", True),
        Family("wavlm", "WavLM", True),
        Family("unispeech", "UniSpeech", True),
        Family("unispeech-sat", "UniSpeech-SAT", True),
        Family("wav2vec2-conformer", "Wav2Vec2-Conformer", False),
        Family("sew", "SEW", False),
        Family("sew-d", "SEW-D", False),
        Family("data2vec-audio", "Data2Vec audio", False),
        Family("wav2vec2-bert", "W2V-BERT 2.0", True, input="fbank", openvino=False),
    )
}


def family_of(config: Any) -> Family:
    """The family of a transformers config (or ``light.LightConfig``): an unknown model type
    is not padding-exact, and neither is a model with an adapter (module docstring)."""
    model_type = str(getattr(config, "model_type", "") or "")
    family = FAMILIES.get(model_type) or Family(model_type, model_type or "unknown", False)
    if family.padding_exact and getattr(config, "add_adapter", False):
        return Family(family.model_type, family.name, False, family.input, family.openvino)
    if getattr(config, "adapter_attn_dim", None):  # MMS: per-language adapters
        # An OpenVINO IR would be cached per model, not per language: torch runs these.
        return Family(
            family.model_type,
            "MMS (wav2vec 2.0 with language adapters)",
            family.padding_exact,
            family.input,
            openvino=False,
        )
    return family


def _adapter_frames(config: Any, n: int, padding: int) -> int:
    kernel = int(getattr(config, "adapter_kernel_size", 3))
    stride = int(getattr(config, "adapter_stride", 2))
    for _ in range(int(getattr(config, "num_adapter_layers", 0) or 0)):
        n = (n + 2 * padding - kernel) // stride + 1
    return n


def output_frames(config: Any, num_samples: int) -> int:
    """Frames the model outputs for ``num_samples`` samples (0 when too short), as
    transformers computes them (``_get_feat_extract_output_lengths``; for W2V-BERT, its
    feature extractor's frame count, padded to pairs, then the adapter), without torch."""
    n = int(num_samples)
    if family_of(config).input == "fbank":
        frames = 1 + (n - FBANK_WINDOW) // FBANK_HOP if n >= FBANK_WINDOW else 0
        if frames < FBANK_MIN_FRAMES:
            return 0
        n = -(-frames // FBANK_STACK)  # padded to a whole pair, then stacked
        if getattr(config, "add_adapter", False):
            n = _adapter_frames(config, n, int(getattr(config, "adapter_kernel_size", 3)) // 2)
        return max(0, n)
    for kernel, stride in zip(config.conv_kernel, config.conv_stride, strict=True):
        n = (n - kernel) // stride + 1
    if getattr(config, "add_adapter", False):
        for _ in range(config.num_adapter_layers):
            n = (n - 1) // config.adapter_stride + 1
    return max(0, n)
