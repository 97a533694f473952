"""Checkpoints → ``LoadedModel``: loading, validation and vocabularies (no inference here)."""

from .families import Family, family_of
from .languages import model_languages
from .loading import (
    LoadedModel,
    find_model_lm_dir,
    is_local,
    load_model,
    load_processor,
    load_processor_light,
    load_weights,
    output_frames,
    resolve_device,
    resolve_dtype,
)
from .vocab import load_vocabulary, vocabulary_from_tokenizer

__all__ = [
    "Family",
    "LoadedModel",
    "family_of",
    "find_model_lm_dir",
    "is_local",
    "load_model",
    "load_processor",
    "load_processor_light",
    "load_vocabulary",
    "load_weights",
    "model_languages",
    "output_frames",
    "resolve_device",
    "resolve_dtype",
    "vocabulary_from_tokenizer",
]
