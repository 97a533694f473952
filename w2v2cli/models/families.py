"""What each supported model family needs from the rest of the tool, in one table.

A family is a transformers ``model_type`` (or this package's own, for the hourglass). For
each: what the model reads (``waveform``: samples through a convolutional front end;
``fbank``: W2V-BERT's 80-bin filterbank frames, stacked in pairs; ``mel``: log-mel frames
that a subsampling front end reduces, Parakeet CTC's and LASR's), the name of its mask
argument, how many output frames an input of ``n`` samples gives (``output_frames``) and
how many samples one frame stands for (``samples_per_frame``), whether OpenVINO runs it,
and whether a padded batch, run with the mask (and, for wav2vec2 and kin, the item-wise
feature encoder of ``inference/exact.py``), gives every item its unbatched result
(``padding_exact``). Every frame count is derived from the model's config (and its
feature extractor's hop and window), never from constants where the config says it.
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

The subword families (issue 25), each computing features per chunk with the model's own
feature extractor, as for W2V-BERT:

- **parakeet_ctc** (NVIDIA's FastConformer CTC): 80-bin log-mel frames every ``hop``
  samples (160), normalised per chunk over the frames the mask keeps (``n // hop``), then
  ``log2(subsampling_factor)`` stride-2 convolutions: 8x, 1,280 samples per frame. Padded
  frames are zeroed after every subsampling convolution and masked in the attention and
  the convolution module, so padding is exact;
- **lasr_ctc** (Google's LASR, MedASR): 128-bin log-mel frames of ``win`` (400) samples
  every ``hop`` (160), not normalised, then two unpadded convolutions (kernel 5, stride 2):
  4x, 640 samples per frame. A real frame never reads a padded one; later layers mask;
- **omniasr_ctc** (Omnilingual ASR CTC): a wav2vec2-style convolutional front end nested in
  ``audio_config`` (320 samples per frame), its mask called ``padding_mask``, layer norms
  per frame only, padded frames zeroed before the one positional convolution: exact.

OpenVINO runs all three (``inference/ir_cache.py``: OmniASR's IR behind a wrapper that adds
the channel axis, Parakeet's and LASR's taking their log-mel frames flattened).

Granite Speech 5 CTC's feature extractor needs torchaudio, which has no release for the
torch this tool is tested with: it is refused in one line (``loading.py``).

Families not in the table are treated as not padding-exact: correct, if slower on CUDA.
MMS models (wav2vec2 with per-language attention adapters, ``adapter_attn_dim``) run on
the torch backend: an OpenVINO IR is cached per model, not per language.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from .checkpoints import HOURGLASS_MODEL_TYPE

#: W2V-BERT's filterbank (``SeamlessM4TFeatureExtractor``): 25 ms windows every 10 ms,
#: frames stacked in pairs. Normalisation per mel bin needs at least two frames.
FBANK_WINDOW = 400
FBANK_HOP = 160
FBANK_STACK = 2
FBANK_MIN_FRAMES = 2
#: Parakeet's and LASR's feature extractors' defaults (``hop_length``, ``win_length``),
#: used only when the feature extractor does not say (``output_frames``' ``extractor``).
MEL_HOP = 160
MEL_WINDOW = 400
#: Parakeet normalises each mel bin over a chunk's frames with an unbiased variance
#: (divided by frames - 1): a chunk needs two frames.
PARAKEET_MIN_FRAMES = 2


@dataclass(frozen=True)
class Family:
    """One model family: its name for people, its input, and what batching it allows.
    ``mask`` is the name of the model's mask argument; ``extractor_tensors`` what its
    feature extractor can return (OmniASR's returns torch tensors only); ``channel_axis``
    whether the model takes samples with a channel axis, ``(batch, 1, samples)``."""

    model_type: str
    name: str
    padding_exact: bool
    input: str = "waveform"  # or "fbank", "mel"
    openvino: bool = True
    mask: str = "attention_mask"
    extractor_tensors: str = "np"
    channel_axis: bool = False  # samples as (batch, 1, samples): OmniASR's

    @property
    def input_name(self) -> str:
        """The model's main input: samples (``input_values``) or feature frames."""
        return "input_values" if self.input == "waveform" else "input_features"


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
        Family("parakeet_ctc", "Parakeet CTC", True, input="mel"),
        Family("lasr_ctc", "LASR CTC (MedASR)", True, input="mel"),
        Family(
            "omniasr_ctc",
            "Omnilingual ASR CTC",
            True,
            mask="padding_mask",
            extractor_tensors="pt",
            channel_axis=True,
        ),
    )
}

#: Model types refused with a reason of their own (``loading.py``): the family and why.
GRANITE_SPEECH5_CTC = "granite_speech5_ctc"


def family_of(config: Any) -> Family:
    """The family of a transformers config (or ``light.LightConfig``): an unknown model type
    is not padding-exact, and neither is a model with an adapter (module docstring)."""
    model_type = str(getattr(config, "model_type", "") or "")
    family = FAMILIES.get(model_type) or Family(model_type, model_type or "unknown", False)
    if family.padding_exact and getattr(config, "add_adapter", False):
        return dataclasses.replace(family, padding_exact=False)
    if getattr(config, "adapter_attn_dim", None):  # MMS: per-language adapters
        # An OpenVINO IR would be cached per model, not per language: torch runs these.
        return dataclasses.replace(
            family, name="MMS (wav2vec 2.0 with language adapters)", openvino=False
        )
    return family


def _adapter_frames(config: Any, n: int, padding: int) -> int:
    kernel = int(getattr(config, "adapter_kernel_size", 3))
    stride = int(getattr(config, "adapter_stride", 2))
    for _ in range(int(getattr(config, "num_adapter_layers", 0) or 0)):
        n = (n + 2 * padding - kernel) // stride + 1
    return n


def audio_config(config: Any) -> Any:
    """The config that holds the convolutional front end: OmniASR's ``audio_config``, the
    config itself for wav2vec2 and kin."""
    return getattr(config, "audio_config", None) or config


def encoder_config(config: Any) -> Any:
    """Parakeet's and LASR's ``encoder_config`` (the subsampling), else the config."""
    return getattr(config, "encoder_config", None) or config


def _hop(extractor: Any) -> int:
    return int(getattr(extractor, "hop_length", None) or MEL_HOP)


def samples_per_frame(config: Any, extractor: Any = None) -> int:
    """Samples one output frame stands for: the product of the convolution strides for
    wav2vec2 and kin (OmniASR's in ``audio_config``); the mel hop times the subsampling
    for Parakeet (``subsampling_factor``) and LASR (two convolutions of
    ``subsampling_conv_stride``); W2V-BERT's hop times its stacking and adapter."""
    family = family_of(config)
    if family.model_type == "parakeet_ctc":
        return _hop(extractor) * int(encoder_config(config).subsampling_factor)
    if family.model_type == "lasr_ctc":
        return _hop(extractor) * int(encoder_config(config).subsampling_conv_stride) ** 2
    ratio = int(getattr(config, "inputs_to_logits_ratio", 0) or 0)
    if ratio:
        return ratio
    return int(math.prod(int(s) for s in audio_config(config).conv_stride))


def output_frames(config: Any, num_samples: int, extractor: Any = None) -> int:
    """Frames the model outputs for ``num_samples`` samples (0 when too short), as
    transformers computes them (``_get_feat_extract_output_lengths``; for W2V-BERT, its
    feature extractor's frame count, padded to pairs, then the adapter; for Parakeet and
    LASR, the frames the feature extractor's mask keeps, then the subsampling's
    ``_get_subsampling_output_length``), without torch. ``extractor`` (the model's
    feature extractor) gives the mel hop and window; their defaults otherwise."""
    n = int(num_samples)
    family = family_of(config)
    if family.model_type == "parakeet_ctc":
        return _parakeet_frames(encoder_config(config), n // _hop(extractor))
    if family.model_type == "lasr_ctc":
        window = int(getattr(extractor, "win_length", None) or MEL_WINDOW)
        frames = 1 + (n - window) // _hop(extractor) if n >= window else 0
        enc = encoder_config(config)
        kernel, stride = int(enc.subsampling_conv_kernel_size), int(enc.subsampling_conv_stride)
        for _ in range(2):  # LasrEncoderSubsampling: conv_0, conv_1, unpadded
            frames = (frames - kernel) // stride + 1 if frames >= kernel else 0
        return frames
    if family.input == "fbank":
        frames = 1 + (n - FBANK_WINDOW) // FBANK_HOP if n >= FBANK_WINDOW else 0
        if frames < FBANK_MIN_FRAMES:
            return 0
        n = -(-frames // FBANK_STACK)  # padded to a whole pair, then stacked
        if getattr(config, "add_adapter", False):
            n = _adapter_frames(config, n, int(getattr(config, "adapter_kernel_size", 3)) // 2)
        return max(0, n)
    front = audio_config(config)
    for kernel, stride in zip(front.conv_kernel, front.conv_stride, strict=True):
        n = (n - kernel) // stride + 1
    if getattr(config, "add_adapter", False):
        for _ in range(config.num_adapter_layers):
            n = (n - 1) // config.adapter_stride + 1
    return max(0, n)


def _parakeet_frames(enc: Any, frames: int) -> int:
    """``ParakeetPreTrainedModel._get_subsampling_output_length`` on ``frames`` mel frames
    (0 below the two frames the per-chunk normalisation needs)."""
    if frames < PARAKEET_MIN_FRAMES:
        return 0
    kernel, stride = int(enc.subsampling_conv_kernel_size), int(enc.subsampling_conv_stride)
    add_pad = (kernel - 1) // 2 * 2 - kernel
    for _ in range(int(math.log2(int(enc.subsampling_factor)))):
        frames = (frames + add_pad) // stride + 1
    return max(0, frames)
