"""Loading the native model (``native.py``) and choosing it over transformers' model.

``load_model`` (``loading.py``) asks here first: ``load_native_model`` for a standard
folder read without transformers (``light.py``; the weights are read in a thread while
torch is imported), ``with_native_weights`` for one whose tokenizer transformers read.
Either returns None, and transformers loads the model, whenever the native model would
not be transformers' exactly (``native.py``'s docstring lists when), on a GPU, or with
``W2V2_TORCH_MODEL=transformers``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .native import NativeConfig, NativeWav2Vec2ForCTC
from .native_weights import checked, expected_shapes, read_bin, read_safetensors, to_tensors

if TYPE_CHECKING:
    from ..options import ModelOptions
    from .loading import LoadedModel

log = logging.getLogger("w2v2cli")


class Loading:
    """A native model being loaded: ``start_loading`` checks the config and starts reading
    ``model.safetensors`` in a thread (file reads release the GIL, so this overlaps the
    ~2.5 s import of torch); ``finish`` makes the model, or None."""

    def __init__(self, folder: Path, config: NativeConfig) -> None:
        import threading

        self.folder, self.config = folder, config
        self._arrays: dict[str, tuple[Any, str]] | None = None
        self._thread: threading.Thread | None = None
        safetensors = folder / "model.safetensors"
        if safetensors.is_file():
            self._thread = threading.Thread(
                target=self._read, args=(safetensors,), name="w2v2-weights", daemon=True
            )
            self._thread.start()

    def _read(self, path: Path) -> None:
        self._arrays = read_safetensors(path, expected_shapes(self.config))

    def finish(self, dtype: str = "float32") -> NativeWav2Vec2ForCTC | None:
        import torch

        torch_dtype = getattr(torch, dtype)
        if self._thread is not None:
            self._thread.join()
            arrays, self._arrays = self._arrays, None
            tensors = None if arrays is None else to_tensors(arrays, torch_dtype)
            del arrays
        else:
            tensors = read_bin(self.folder, torch_dtype)
        weights = None if tensors is None else checked(tensors, self.config, self.folder)
        return None if weights is None else NativeWav2Vec2ForCTC(self.config, weights)


def native_config(folder: Path) -> NativeConfig | None:
    """The folder's config when it is a plain ``Wav2Vec2ForCTC`` this module runs."""
    try:
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return NativeConfig.from_raw(raw) if isinstance(raw, dict) else None


def start_loading(folder: Path) -> Loading | None:
    """Start loading the folder's model (``Loading``), or None when its config is not one
    this module runs; call before importing torch to overlap the two."""
    config = native_config(folder)
    return None if config is None else Loading(folder, config)


def load_native(folder: Path, dtype: str = "float32") -> NativeWav2Vec2ForCTC | None:
    """The folder's model as ``NativeWav2Vec2ForCTC`` in ``dtype``, or None when it is not
    one this module runs exactly as transformers does (module docstring)."""
    loading = start_loading(folder)
    return None if loading is None else loading.finish(dtype)


#: ``transformers`` makes the torch backend load transformers' model even where this
#: package's own copy (``native.py``) runs it; for comparisons and as a way out.
TORCH_MODEL_ENV = "W2V2_TORCH_MODEL"


def native_dtype(options: ModelOptions) -> str | None:
    """The dtype the native model (``native.py``) would run in for these options, or None
    when it is not to be used: ``W2V2_TORCH_MODEL=transformers``, a GPU asked for, a
    language adapter, or a dtype torch does not run."""
    from ..errors import ConfigError
    from .loading import resolve_dtype

    choice = os.environ.get(TORCH_MODEL_ENV, "").strip().lower() or "auto"
    if choice not in ("auto", "transformers"):
        raise ConfigError(f"{TORCH_MODEL_ENV}={choice!r}: expected auto or transformers")
    if choice == "transformers" or options.device not in ("auto", "cpu") or options.language:
        return None
    dtype = resolve_dtype(options.dtype, "cpu")
    return dtype if dtype in ("float32", "float16", "bfloat16") else None


def load_native_model(options: ModelOptions) -> LoadedModel | None:
    """The torch backend's model without transformers (``native.py``): a standard wav2vec2
    CTC folder on disk, run on the CPU; None for anything else, which ``load_model`` then
    loads through transformers."""
    from .loading import load_processor_light, resolve_device

    dtype = native_dtype(options)
    if dtype is None:
        return None
    parts = load_processor_light(options)
    if parts is None or parts.local_dir is None:
        return None
    loading = start_loading(parts.local_dir)  # reads the weights while torch is imported
    if loading is None or resolve_device(options.device) != "cpu":
        return None
    model = loading.finish(dtype)
    if model is None:
        return None
    log.debug("loaded %s on cpu as %s without transformers", parts.name, dtype)
    return dataclasses.replace(parts, model=model, device="cpu", dtype=dtype)


def with_native_weights(parts: LoadedModel, options: ModelOptions) -> LoadedModel | None:
    """``parts`` (read by transformers: a tokenizer outside the common layout) with the
    native model's weights, when the folder holds a model it runs: transformers'
    processor classes, but not its modeling code (about 3 s of the 5 s of imports)."""
    from .loading import resolve_device

    dtype = native_dtype(options)
    if dtype is None or parts.local_dir is None or resolve_device(options.device) != "cpu":
        return None
    model = load_native(parts.local_dir, dtype)
    if model is None:
        return None
    log.debug("loaded %s on cpu as %s without transformers' model", parts.name, dtype)
    return dataclasses.replace(parts, model=model, device="cpu", dtype=dtype)
