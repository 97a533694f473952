"""Checkpoints → ``LoadedModel``: what ``-m`` points at (``ref.py``), loading and validation,
vocabularies, the device and dtype policy (no inference here)."""

from .device import resolve_device, resolve_dtype
from .families import Family, family_of, output_frames
from .languages import model_languages
from .light import load_processor_light
from .loaded import LoadedModel
from .loading import load_model, load_parts, load_processor, load_vocabulary, load_weights
from .ref import ModelRef, find_model_lm_dir, is_local, locate_model, model_ref, resolve_model
from .vocab import vocabulary_from_tokenizer

__all__ = [
    "Family",
    "LoadedModel",
    "ModelRef",
    "family_of",
    "find_model_lm_dir",
    "is_local",
    "load_model",
    "load_parts",
    "load_processor",
    "load_processor_light",
    "load_vocabulary",
    "load_weights",
    "locate_model",
    "model_languages",
    "model_ref",
    "output_frames",
    "resolve_device",
    "resolve_dtype",
    "resolve_model",
    "vocabulary_from_tokenizer",
]
