"""What each supported model family needs from the rest of the tool, in one table.

A family is a transformers ``model_type`` (or this package's own, for the hourglass).
``padding_exact`` says whether a padded batch, run with the attention mask and the
item-wise feature encoder (``inference/exact.py``), gives every item its unbatched result.
Where it does not, only items of equal length share a model call (see
``inference/torch_backend.py``), which keeps results independent of the batch:

- **wav2vec2-conformer**: the conformer's depthwise convolution (``conv_module``) ignores
  the attention mask, so the padded frames' values reach the last real frames;
- **sew**, **sew-d**: the encoder average-pools frames in groups (``squeeze_factor``)
  without a mask, and an item alone drops the frames that do not fill a group, so a
  padded item pools frames its unpadded self never sees;
- **data2vec-audio**: padded frames are zeroed only before the first of its stacked
  positional convolutions; from the second on, their (non-zero) values reach real frames.

Families not in the table are treated as not padding-exact: correct, if slower on CUDA.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .checkpoints import HOURGLASS_MODEL_TYPE


@dataclass(frozen=True)
class Family:
    """One model family: its name for people, and what batching it allows."""

    model_type: str
    name: str
    padding_exact: bool


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
    )
}


def family_of(config: Any) -> Family:
    """The family of a transformers config (or ``light.LightConfig``); an unknown model
    type gets a family that is not padding-exact."""
    model_type = str(getattr(config, "model_type", "") or "")
    return FAMILIES.get(model_type) or Family(model_type, model_type or "unknown", False)
