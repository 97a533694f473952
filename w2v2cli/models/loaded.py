"""``LoadedModel``: what a loader hands the rest of the tool (processor parts, vocabulary,
and the weights when the torch backend runs them). The loaders are ``loading.py`` (through
transformers), ``light.py`` (without it) and ``native_loading.py`` (this package's model)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records import Vocabulary
from .families import family_of, output_frames
from .ref import ModelRef


@dataclass
class LoadedModel:
    """A model's processor parts, vocabulary and (for the torch backend) weights.

    ``ref`` is what ``-m`` pointed at (``ref.py``); ``model`` is the torch model on
    ``device`` in ``dtype`` (names: ``"cpu"``, ``"float32"``), or None when another backend
    runs the model and the weights were never loaded. ``config`` is transformers' config or
    ``light.LightConfig``; ``tokenizer`` is None when the vocabulary was read without
    transformers.
    """

    ref: ModelRef
    model: Any  # a torch module or None (kept untyped: no torch import)
    feature_extractor: Any
    tokenizer: Any
    vocabulary: Vocabulary
    sampling_rate: int
    samples_per_frame: int
    device: str
    dtype: str
    wants_attention_mask: bool
    config: Any = None

    @property
    def name(self) -> str:
        """The model as the user named it (messages and the JSON output say this)."""
        return self.ref.name

    @property
    def local_dir(self) -> Path | None:
        """The folder the files were read from (a user's folder, a converted checkpoint's,
        or the cache's snapshot of a hub id); None for a hub id read from the hub."""
        return self.ref.folder

    @property
    def is_hub(self) -> bool:
        return self.ref.is_hub

    def output_frames(self, num_samples: int) -> int:
        """Frames the model outputs for ``num_samples`` samples (0 when too short)."""
        return output_frames(self.config, num_samples, self.feature_extractor)

    @property
    def frame_duration(self) -> float:
        return self.samples_per_frame / self.sampling_rate

    @property
    def padding_exact(self) -> bool:
        """Whether a padded batch gives every item its unbatched result (``families.py``);
        when not, only items of equal length share a model call."""
        return family_of(self.config).padding_exact

    def find_lm_dir(self) -> Path | None:
        """The model's own ``language_model/`` folder, or None (``ModelRef.lm_dir``). Called
        only when beam search could use it, so greedy runs never look."""
        return self.ref.lm_dir()
